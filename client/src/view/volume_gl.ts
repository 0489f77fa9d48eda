// The volume in one plane, drawn with WebGL2 (as Neuroglancer draws its
// chunks): each brick's slice is uploaded once into a texture of brick
// slots, and every frame is one quad whose fragment shader finds the slot
// and the voxel under each pixel, applies brightness and contrast and lays
// the segmentation's colours over the EM.
//
// Why: the 2D-canvas renderer drew each brick's slice as a canvas of its
// own; panning at 1280×800 (three 512×384 planes, ~600 bricks in view)
// spent its frames in per-brick drawImage calls and canvas creation —
// frame interval p95 83–133 ms on software GL (docs/performance.md). Here a
// pan uploads only the bricks that came into view (32×32 texels each) and
// draws one quad per plane.
//
// One WebGL2 context for the three planes, on one canvas under them, each
// plane drawn in its own viewport: with software GL (SwiftShader) a context
// switch costs milliseconds (a trace of panning showed ~5.7 ms per
// GLContextEGL::MakeCurrent with a context per plane).
//
// Slots wrap around (brick u → slot u mod slotsU): the slot grid is at
// least as large as the bricks in view, so each brick in view has a slot of
// its own and panning never moves what is already uploaded. A small
// texture says per slot whether it holds the brick in view now; a slot
// whose brick has not arrived, or came as missing or failed, shows the
// level below it, or the background (a missing tile).
//
// Two levels per plane, as Neuroglancer and WEBKNOSSOS draw coarser data
// while the finer loads: level 0 at the mag the zoom asks for, level 1 at a
// mag four times coarser (1/64 of the bytes), asked for first. The demo's
// first view needs ~660 EM bricks at mag 1 (19 MB) and 36 at mag 4: the
// coarse level fills the planes long before the fine one is complete.

import { BRICK } from '../volume/bricks'

const VERTEX = `#version 300 es
in vec2 corner;
void main() { gl_Position = vec4(corner, 0.0, 1.0); }
`

const FRAGMENT = `#version 300 es
precision highp float;
precision highp int;
// Per level: R8UI grey values and RGBA8UI segment colours (alpha 0: no
// segment; 255: drawn at the overlay's opacity; another: highlighted),
// BRICK×BRICK texels per slot; RG8UI per slot: EM there,
// segmentation there.
uniform highp usampler2D em0, seg0, valid0, em1, seg1, valid1;
struct Level {
  vec2 first;   // the mag voxel at the area's top-left pixel, from the first brick in view
  vec2 step;    // mag voxels per screen pixel
  ivec2 slot0;  // the first brick's slot
  ivec2 slots;  // slots across and down
};
uniform Level level0, level1;
uniform bool coarse;    // level 1 is there
uniform vec2 origin;    // the area's left and top edges, in GL window pixels (from the bottom left)
uniform vec2 look;      // brightness, contrast
uniform float alpha;    // the segmentation's opacity
out vec4 colour;

// The texel under screen in a level, or (-1, -1) where that level has nothing.
ivec2 find(Level level, highp usampler2D valid, vec2 screen, out uvec2 there) {
  vec2 voxel = floor(level.first + screen * level.step);
  ivec2 local = ivec2(floor(voxel / float(${BRICK})));
  ivec2 slot = (level.slot0 + local) % level.slots;
  there = texelFetch(valid, slot, 0).rg;
  if (voxel.x < 0.0 || voxel.y < 0.0 || (there.r == 0u && there.g == 0u)) return ivec2(-1);
  return slot * ${BRICK} + ivec2(voxel) - local * ${BRICK};
}

void main() {
  // Pixels from the area's top left (gl_FragCoord counts from the canvas's bottom left).
  vec2 screen = vec2(gl_FragCoord.x - origin.x, origin.y - gl_FragCoord.y);
  uvec2 there;
  float g;
  uvec4 s = uvec4(0u);
  ivec2 texel = find(level0, valid0, screen, there);
  if (texel.x >= 0) {
    g = there.r != 0u ? float(texelFetch(em0, texel, 0).r) : 0.0;
    if (there.g != 0u) s = texelFetch(seg0, texel, 0);
  } else {
    if (coarse) texel = find(level1, valid1, screen, there);
    if (texel.x < 0) { colour = vec4(vec3(17.0 / 255.0), 1.0); return; }
    g = there.r != 0u ? float(texelFetch(em1, texel, 0).r) : 0.0;
    if (there.g != 0u) s = texelFetch(seg1, texel, 0);
  }
  float c = clamp(floor((g - 127.5) * look.y + 127.5 + look.x * 255.0 + 0.5), 0.0, 255.0) / 255.0;
  vec3 rgb = vec3(c);
  // Alpha 255: the overlay's opacity; below (a highlighted segment): halfway to opaque.
  if (s.a != 0u && alpha > 0.0) rgb = mix(rgb, vec3(s.rgb) / 255.0, s.a == 255u ? alpha : alpha + (1.0 - alpha) * 0.5);
  colour = vec4(rgb, 1.0);
}
`

/** A brick's slice for upload: grey values and segment colours (RGBA words), BRICK×BRICK. */
export interface SliceTexels {
  grey: Uint8Array | null // null: no EM here (no layer, or a missing or failed brick)
  colours: Uint32Array | null // null: no segmentation here
}

/** Where a level's bricks are on screen this frame. */
export interface LevelView {
  /** The mag voxel (u, v) at the area's top-left corner, relative to `brick0`'s corner. */
  first: [number, number]
  /** Mag voxels per screen pixel. */
  step: [number, number]
  /** The first brick in view (u, v). */
  brick0: [number, number]
}

export interface Area {
  x: number
  y: number
  width: number
  height: number
}

const SAMPLERS = ['em0', 'seg0', 'valid0', 'em1', 'seg1', 'valid1']
const LEVEL_FIELDS = ['first', 'step', 'slot0', 'slots']

/** The one context and program; its planes each draw in their own area. */
export class VolumeCanvas {
  readonly uniforms = new Map<string, WebGLUniformLocation | null>()

  static create(canvas: HTMLCanvasElement): VolumeCanvas | null {
    const gl = canvas.getContext('webgl2', { antialias: false, depth: false, preserveDrawingBuffer: false })
    return gl ? new VolumeCanvas(gl) : null
  }

  private constructor(readonly gl: WebGL2RenderingContext) {
    const program = link(gl, VERTEX, FRAGMENT)
    gl.useProgram(program)
    const names = [...SAMPLERS, 'coarse', 'origin', 'look', 'alpha']
    for (const level of ['level0', 'level1']) for (const field of LEVEL_FIELDS) names.push(`${level}.${field}`)
    for (const name of names) this.uniforms.set(name, gl.getUniformLocation(program, name))
    const quad = gl.createBuffer()
    gl.bindBuffer(gl.ARRAY_BUFFER, quad)
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW)
    const at = gl.getAttribLocation(program, 'corner')
    gl.enableVertexAttribArray(at)
    gl.vertexAttribPointer(at, 2, gl.FLOAT, false, 0, 0)
    SAMPLERS.forEach((name, unit) => gl.uniform1i(this.uniforms.get(name) ?? null, unit))
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1)
    gl.enable(gl.SCISSOR_TEST)
  }

  uniform(name: string): WebGLUniformLocation | null {
    return this.uniforms.get(name) ?? null
  }

  /** A plane drawn where `area` (canvas pixels from the top left) says. */
  plane(area: () => Area): PlaneVolume {
    return new PlaneVolume(this, area)
  }
}

/** One level's bricks in view, in slots of its own textures. */
export class SlotGrid {
  private readonly em: WebGLTexture
  private readonly seg: WebGLTexture
  private readonly validity: WebGLTexture
  private slotsU = 0
  private slotsV = 0
  /** What each slot holds (a brick's look and coordinates), '' for nothing. */
  private held: string[] = []
  /** Per slot: what its brick has (EM, segmentation), as put. */
  private has = new Uint8Array(0)
  private flags = new Uint8Array(0)

  constructor(private readonly gl: WebGL2RenderingContext) {
    this.em = texture(gl)
    this.seg = texture(gl)
    this.validity = texture(gl)
  }

  /** Make room for `across`×`down` bricks in view (grows, never shrinks; growing forgets what was uploaded). */
  reserve(across: number, down: number): void {
    if (across <= this.slotsU && down <= this.slotsV) return
    const gl = this.gl
    this.slotsU = Math.max(across, this.slotsU)
    this.slotsV = Math.max(down, this.slotsV)
    const w = this.slotsU * BRICK
    const h = this.slotsV * BRICK
    gl.bindTexture(gl.TEXTURE_2D, this.em)
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8UI, w, h, 0, gl.RED_INTEGER, gl.UNSIGNED_BYTE, null)
    gl.bindTexture(gl.TEXTURE_2D, this.seg)
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA8UI, w, h, 0, gl.RGBA_INTEGER, gl.UNSIGNED_BYTE, null)
    this.held = new Array(this.slotsU * this.slotsV).fill('')
    this.has = new Uint8Array(this.slotsU * this.slotsV * 2)
    this.flags = new Uint8Array(this.slotsU * this.slotsV * 2)
  }

  slotOf(bu: number, bv: number): number {
    return mod(bv, this.slotsV) * this.slotsU + mod(bu, this.slotsU)
  }

  holds(slot: number, key: string): boolean {
    return this.held[slot] === key
  }

  /** Upload a brick's slice into its slot. */
  put(slot: number, key: string, texels: SliceTexels): void {
    const gl = this.gl
    const x = (slot % this.slotsU) * BRICK
    const y = Math.floor(slot / this.slotsU) * BRICK
    if (texels.grey) {
      gl.bindTexture(gl.TEXTURE_2D, this.em)
      gl.texSubImage2D(gl.TEXTURE_2D, 0, x, y, BRICK, BRICK, gl.RED_INTEGER, gl.UNSIGNED_BYTE, texels.grey)
    }
    this.has[slot * 2] = texels.grey ? 1 : 0
    this.has[slot * 2 + 1] = texels.colours ? 1 : 0
    if (texels.colours) {
      gl.bindTexture(gl.TEXTURE_2D, this.seg)
      const bytes = new Uint8Array(texels.colours.buffer, texels.colours.byteOffset, texels.colours.byteLength)
      gl.texSubImage2D(gl.TEXTURE_2D, 0, x, y, BRICK, BRICK, gl.RGBA_INTEGER, gl.UNSIGNED_BYTE, bytes)
    }
    this.held[slot] = key
  }

  /** Forget a slot's brick (it is not drawn until put again). */
  drop(slot: number): void {
    this.held[slot] = ''
  }

  /** Say that a slot holds a brick in view this frame (drawn with what it has). */
  mark(slot: number): void {
    this.flags[slot * 2] = this.has[slot * 2]
    this.flags[slot * 2 + 1] = this.has[slot * 2 + 1]
  }

  clearMarks(): void {
    this.flags.fill(0)
  }

  /** Bind the textures from `unit` on and set the level's uniforms. */
  bind(canvas: VolumeCanvas, unit: number, level: string, view: LevelView): void {
    const gl = this.gl
    gl.activeTexture(gl.TEXTURE0 + unit)
    gl.bindTexture(gl.TEXTURE_2D, this.em)
    gl.activeTexture(gl.TEXTURE0 + unit + 1)
    gl.bindTexture(gl.TEXTURE_2D, this.seg)
    gl.activeTexture(gl.TEXTURE0 + unit + 2)
    gl.bindTexture(gl.TEXTURE_2D, this.validity)
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RG8UI, this.slotsU, this.slotsV, 0, gl.RG_INTEGER, gl.UNSIGNED_BYTE, this.flags)
    gl.activeTexture(gl.TEXTURE0) // uploads bind on unit 0
    gl.uniform2f(canvas.uniform(`${level}.first`), view.first[0], view.first[1])
    gl.uniform2f(canvas.uniform(`${level}.step`), view.step[0], view.step[1])
    gl.uniform2i(canvas.uniform(`${level}.slot0`), mod(view.brick0[0], this.slotsU), mod(view.brick0[1], this.slotsV))
    gl.uniform2i(canvas.uniform(`${level}.slots`), this.slotsU, this.slotsV)
  }
}

/** One plane: its two levels, drawn in its area of the canvas. */
export class PlaneVolume {
  readonly levels: [SlotGrid, SlotGrid]

  constructor(
    private readonly canvas: VolumeCanvas,
    private readonly area: () => Area,
  ) {
    this.levels = [new SlotGrid(canvas.gl), new SlotGrid(canvas.gl)]
  }

  /** One frame: level 0 where it has the brick, else level 1 (`coarse`, if any), else background. */
  render(fine: LevelView, coarse: LevelView | null, look: { brightness: number; contrast: number }, alpha: number): void {
    const gl = this.canvas.gl
    const area = this.area()
    const bottom = gl.drawingBufferHeight - area.y - area.height // GL counts from the bottom
    gl.viewport(area.x, bottom, area.width, area.height)
    gl.scissor(area.x, bottom, area.width, area.height)
    this.levels[0].bind(this.canvas, 0, 'level0', fine)
    if (coarse) this.levels[1].bind(this.canvas, 3, 'level1', coarse)
    else this.levels[1].bind(this.canvas, 3, 'level1', fine) // unused, but every sampler bound
    gl.uniform1i(this.canvas.uniform('coarse'), coarse ? 1 : 0)
    gl.uniform2f(this.canvas.uniform('origin'), area.x, gl.drawingBufferHeight - area.y)
    gl.uniform2f(this.canvas.uniform('look'), look.brightness, look.contrast)
    gl.uniform1f(this.canvas.uniform('alpha'), alpha)
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4)
  }
}

function mod(a: number, n: number): number {
  return ((a % n) + n) % n
}

function texture(gl: WebGL2RenderingContext): WebGLTexture {
  const t = gl.createTexture() as WebGLTexture
  gl.bindTexture(gl.TEXTURE_2D, t)
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST)
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST)
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE)
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE)
  return t
}

function link(gl: WebGL2RenderingContext, vertex: string, fragment: string): WebGLProgram {
  const program = gl.createProgram() as WebGLProgram
  for (const [type, source] of [
    [gl.VERTEX_SHADER, vertex],
    [gl.FRAGMENT_SHADER, fragment],
  ] as const) {
    const shader = gl.createShader(type) as WebGLShader
    gl.shaderSource(shader, source)
    gl.compileShader(shader)
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(`shader: ${gl.getShaderInfoLog(shader)}`)
    gl.attachShader(program, shader)
  }
  gl.linkProgram(program)
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(`program: ${gl.getProgramInfoLog(program)}`)
  return program
}
