// The annotation page: one XY plane of the skeleton (the volume's bricks,
// the other planes and the 3D view follow), others' cursors live, the
// connection's saved state always visible, the version list.
//
// Controls as in WEBKNOSSOS (../shared/wk-habits.md): left click places a
// node connected to the active one; right click selects the nearest node;
// scroll or f/d moves through slices, Alt+scroll zooms; Delete removes the
// active node; B marks a branchpoint, J jumps to the last one, C starts a
// new tree; Ctrl+Z / Ctrl+Shift+Z undo and redo this page's edits only.

import { Api, type Me } from '../api'
import { Connection, describe } from '../sync/connection'
import { History } from '../sync/replay'
import { SkeletonDoc, type Vec3 } from '../skeleton/model'
import { BRICK, type BrickSource, type Mag } from '../volume/bricks'
import { openColorLayer } from '../volume/layers'

interface Peer {
  name: string
  color: string
  position: Vec3 | null
  activeNode: string | null
}

const USER_COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#46f0f0', '#f032e6']

export async function viewer(root: HTMLElement, api: Api, id: number): Promise<void> {
  const [info, me] = await Promise.all([api.annotation(id), api.me()])
  // Only a writer keeps a local copy (what a read-only page holds is the server's).
  const connection = new Connection(id, 'skeleton', api.token, info.access !== 'read')
  const sk = new SkeletonDoc(connection.doc)
  /** What the plane shows: the live document, or an earlier version while replaying. */
  let view: SkeletonDoc = sk
  const params = new URLSearchParams(location.search)
  const centre: Vec3 = (params.get('pos')?.split(',').map(Number) as Vec3) ?? [128, 128, 64]
  let zoom = Number(params.get('zoom') ?? 1) // screen pixels per voxel
  let activeNode: string | null = null
  let activeTree: string | null = null
  const cursor: Vec3 = [...centre]

  root.innerHTML = `
    <header class="bar">
      <a href="/">collab</a>
      <strong data-testid="title"></strong>
      <span data-testid="access" class="badge"></span>
      <span data-testid="status" class="status">connecting…</span>
    </header>
    <main class="viewer">
      <canvas data-testid="xy" width="800" height="600" tabindex="0"></canvas>
      <aside>
        <p><span data-testid="position"></span> · <span data-testid="node-count">0</span> nodes</p>
        <p>bricks: <span data-testid="bricks">–</span></p>
        <p>active node: <span data-testid="active-node">none</span></p>
        <h3>People here</h3><ul data-testid="peers"></ul>
        <h3>History</h3>
        <p><button data-testid="history-open">Replay…</button></p>
        <div data-testid="history" hidden>
          <input type="range" data-testid="history-slider" min="0" max="0" value="0" />
          <p><span data-testid="history-label"></span></p>
          <p><button data-testid="history-restore">Restore this version</button>
             <button data-testid="history-revert">Revert this version</button>
             <button data-testid="history-close">Back to now</button></p>
        </div>
        <h3>Versions</h3><ol data-testid="versions" class="versions"></ol>
      </aside>
    </main>`
  const canvas = root.querySelector('canvas') as HTMLCanvasElement
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D
  const text = (name: string) => root.querySelector(`[data-testid="${name}"]`) as HTMLElement
  text('title').textContent = info.name
  const writable = info.access !== 'read'
  text('access').textContent = writable ? '' : 'read-only'

  const myName = me.name ?? (me.link ? 'guest (share link)' : 'anonymous')
  const myColor = USER_COLORS[(me.id ?? connection.doc.clientID) % USER_COLORS.length]
  const awareness = connection.provider.awareness
  const publish = () =>
    awareness.setLocalState({
      user: { id: me.id ?? null, name: myName, color: myColor },
      position: [...cursor],
      activeNode,
    })
  publish()

  const toScreen = (p: Vec3): [number, number] => [
    canvas.width / 2 + (p[0] - centre[0]) * zoom,
    canvas.height / 2 + (p[1] - centre[1]) * zoom,
  ]
  const toVoxel = (x: number, y: number): Vec3 => [
    Math.round(centre[0] + (x - canvas.width / 2) / zoom),
    Math.round(centre[1] + (y - canvas.height / 2) / zoom),
    Math.round(centre[2]),
  ]
  const SLAB = 5 // nodes within this many slices of the plane are drawn

  const volume = info.dataset ? await openColorLayer(api, info.dataset) : null
  if (volume) volume.source.onBrick = () => redraw()
  const tile = document.createElement('canvas')
  const tileCtx = tile.getContext('2d') as CanvasRenderingContext2D

  /** The EM slice through the centre, from the bricks at the mag the zoom asks for. */
  function drawVolume(source: BrickSource, mags: Mag[]): boolean {
    const wanted = 1 / zoom
    const mag = mags.reduce((best, m) => (m.factor[0] <= Math.max(1, wanted) && m.factor[0] > best.factor[0] ? m : best), mags[0])
    const [fx, fy, fz] = mag.factor
    const halfW = canvas.width / 2 / zoom
    const halfH = canvas.height / 2 / zoom
    const bx0 = Math.floor((centre[0] - halfW) / fx / BRICK)
    const bx1 = Math.floor((centre[0] + halfW) / fx / BRICK)
    const by0 = Math.floor((centre[1] - halfH) / fy / BRICK)
    const by1 = Math.floor((centre[1] + halfH) / fy / BRICK)
    const zVoxel = Math.floor(centre[2] / fz)
    const bz = Math.floor(zVoxel / BRICK)
    const k = zVoxel - bz * BRICK
    const nx = bx1 - bx0 + 1
    const ny = by1 - by0 + 1
    const bricks: [number, number, number][] = []
    for (let by = by0; by <= by1; by++) for (let bx = bx0; bx <= bx1; bx++) if (bx >= 0 && by >= 0 && bz >= 0) bricks.push([bx, by, bz])
    source.want(mag, bricks, [Math.floor(centre[0] / fx / BRICK), Math.floor(centre[1] / fy / BRICK), bz])
    tile.width = nx * BRICK
    tile.height = ny * BRICK
    const image = tileCtx.createImageData(tile.width, tile.height)
    const pixels = new Uint32Array(image.data.buffer)
    let complete = true
    for (const [bx, by] of bricks) {
      const data = source.get(mag, [bx, by, bz])
      if (data === undefined) {
        complete = false
        continue
      }
      if (data === null) continue
      const ox = (bx - bx0) * BRICK
      const oy = (by - by0) * BRICK
      for (let j = 0; j < BRICK; j++) {
        const row = (oy + j) * tile.width + ox
        const from = BRICK * (j + BRICK * k)
        for (let i = 0; i < BRICK; i++) {
          const v = data[from + i] & 0xff
          pixels[row + i] = 0xff000000 | (v << 16) | (v << 8) | v
        }
      }
    }
    tileCtx.putImageData(image, 0, 0)
    ctx.imageSmoothingEnabled = false
    const [sx, sy] = toScreen([bx0 * BRICK * fx, by0 * BRICK * fy, 0])
    ctx.drawImage(tile, sx, sy, tile.width * fx * zoom, tile.height * fy * zoom)
    return complete
  }

  let frame = 0
  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(draw)
  }
  function draw(): void {
    frame = 0
    ctx.fillStyle = '#111'
    ctx.fillRect(0, 0, canvas.width, canvas.height)
    if (volume) {
      const complete = drawVolume(volume.source, volume.mags)
      const shown = text('bricks')
      shown.textContent = complete ? 'all in view loaded' : `${volume.source.outstanding} loading`
      shown.dataset.complete = String(complete)
    }
    const near = (p: Vec3) => Math.abs(p[2] - centre[2]) <= SLAB
    ctx.lineWidth = 1.5
    for (const [key, tree] of view.edges) {
      const [a, b] = key.split(',')
      const na = view.nodes.get(a)
      const nb = view.nodes.get(b)
      if (!na || !nb || !(near(na.position) || near(nb.position))) continue
      ctx.strokeStyle = view.treeColor(tree)
      ctx.beginPath()
      ctx.moveTo(...toScreen(na.position))
      ctx.lineTo(...toScreen(nb.position))
      ctx.stroke()
    }
    for (const [nid, node] of view.nodes) {
      if (!near(node.position)) continue
      const [x, y] = toScreen(node.position)
      ctx.fillStyle = view.treeColor(node.treeId)
      ctx.beginPath()
      ctx.arc(x, y, nid === activeNode ? 6 : 4, 0, 2 * Math.PI)
      ctx.fill()
      if (nid === activeNode) {
        ctx.strokeStyle = '#fff'
        ctx.stroke()
      }
    }
    for (const peer of peers()) {
      if (!peer.position) continue
      const [x, y] = toScreen(peer.position)
      ctx.strokeStyle = peer.color
      ctx.beginPath()
      ctx.moveTo(x - 8, y)
      ctx.lineTo(x + 8, y)
      ctx.moveTo(x, y - 8)
      ctx.lineTo(x, y + 8)
      ctx.stroke()
      ctx.fillStyle = peer.color
      ctx.fillText(peer.name, x + 10, y - 10)
    }
    text('position').textContent = `${centre.map(Math.round).join(', ')} @ ${zoom.toFixed(2)}×`
    text('node-count').textContent = String(view.nodes.size)
    text('active-node').textContent = activeNode ?? 'none'
  }

  function peers(): Peer[] {
    const out: Peer[] = []
    for (const [clientId, state] of awareness.getStates()) {
      if (clientId === connection.doc.clientID || !state?.user) continue
      out.push({
        name: String(state.user.name ?? 'someone'),
        color: String(state.user.color ?? '#ccc'),
        position: Array.isArray(state.position) ? (state.position as Vec3) : null,
        activeNode: typeof state.activeNode === 'string' ? state.activeNode : null,
      })
    }
    return out
  }

  awareness.on('change', () => {
    const list = text('peers')
    list.replaceChildren(
      ...peers().map((p) => {
        const li = document.createElement('li')
        li.textContent = p.name
        li.style.color = p.color
        return li
      }),
    )
    redraw()
  })
  connection.doc.on('update', redraw)

  const versions = text('versions')
  let versionsFetched = -1
  const refreshVersions = async (saved: number) => {
    if (saved === versionsFetched) return
    versionsFetched = saved
    const { versions: list } = await api.versions(id, 50)
    versions.replaceChildren(
      ...list.map((v) => {
        const li = document.createElement('li')
        const what = Object.keys(v.summary).join(', ')
        li.textContent = `v${v.version} ${v.author === null ? 'server' : `user ${v.author}`} ${what}`
        return li
      }),
    )
  }
  connection.onChange((state) => {
    text('status').textContent = describe(state)
    text('status').dataset.saved = String(state.savedVersion)
    if (state.readOnly) text('access').textContent = 'read-only: your edits are not saved'
    void refreshVersions(state.savedVersion).catch(() => undefined)
  })

  const select = (nid: string | null) => {
    activeNode = nid
    activeTree = nid ? (sk.nodes.get(nid)?.treeId ?? null) : activeTree
    publish()
    redraw()
  }
  const nearest = (p: Vec3): string | null => {
    let best: string | null = null
    let distance = 10 / zoom
    for (const [nid, node] of view.nodes) {
      if (Math.abs(node.position[2] - p[2]) > SLAB) continue
      const d = Math.hypot(node.position[0] - p[0], node.position[1] - p[1])
      if (d <= distance) {
        best = nid
        distance = d
      }
    }
    return best
  }

  canvas.addEventListener('mousemove', (event) => {
    const p = toVoxel(event.offsetX, event.offsetY)
    cursor.splice(0, 3, ...p)
    publish()
  })
  canvas.addEventListener('contextmenu', (event) => event.preventDefault())
  canvas.addEventListener('mousedown', (event) => {
    canvas.focus()
    const p = toVoxel(event.offsetX, event.offsetY)
    if (event.button === 2) {
      select(nearest(p))
      return
    }
    if (event.button !== 0 || !writable || view !== sk) return
    const valid = activeNode !== null && sk.nodes.has(activeNode) ? activeNode : null
    select(sk.addNode(p, activeTree, valid))
  })
  canvas.addEventListener('wheel', (event) => {
    event.preventDefault()
    if (event.altKey) zoom = Math.min(32, Math.max(1 / 32, zoom * (event.deltaY < 0 ? 1.25 : 0.8)))
    else centre[2] += event.deltaY < 0 ? 1 : -1
    redraw()
  })
  canvas.addEventListener('keydown', (event) => {
    const key = event.key.toLowerCase()
    if ((event.ctrlKey || event.metaKey) && key === 'z') {
      event.preventDefault()
      if (event.shiftKey) sk.undo.redo()
      else sk.undo.undo()
      if (activeNode && !sk.nodes.has(activeNode)) select(null)
      return
    }
    if (key === 'f') centre[2] += 1
    else if (key === 'd') centre[2] -= 1
    else if (key === 'arrowleft') centre[0] -= 10 / zoom
    else if (key === 'arrowright') centre[0] += 10 / zoom
    else if (key === 'arrowup') centre[1] -= 10 / zoom
    else if (key === 'arrowdown') centre[1] += 10 / zoom
    else if (!writable || view !== sk) return
    else if ((key === 'delete' || key === 'backspace') && activeNode) {
      sk.deleteNode(activeNode)
      select(null)
    } else if (key === 'b' && activeNode) sk.setBranchpoint(activeNode)
    else if (key === 'j') {
      const target = sk.lastBranchpoint()
      if (target) {
        const node = sk.nodes.get(target)
        if (node) centre.splice(0, 3, ...node.position)
        select(target)
      }
    } else if (key === 'c') {
      activeTree = sk.createTree()
      select(null)
    } else return
    redraw()
  })
  // History: scrub through every version, restore one or revert what it did.
  let history: History | null = null
  const slider = root.querySelector('[data-testid="history-slider"]') as HTMLInputElement
  const panel = text('history')
  const showVersion = () => {
    if (!history) return
    const n = Number(slider.value)
    view = n >= history.head ? sk : new SkeletonDoc(history.at(n))
    const meta = history.versions[n - 1]
    text('history-label').textContent =
      `version ${n} of ${history.head}` + (meta ? ` · ${new Date(meta.time).toLocaleString()}` : '')
    redraw()
  }
  const openHistory = async () => {
    history = await History.load(id, 'skeleton', api.token)
    slider.max = String(history.head)
    slider.value = String(history.head)
    panel.hidden = false
    showVersion()
  }
  text('history-open').addEventListener('click', () => void openHistory())
  slider.addEventListener('input', showVersion)
  text('history-close').addEventListener('click', () => {
    panel.hidden = true
    view = sk
    redraw()
  })
  const act = async (how: 'restore' | 'revert') => {
    const version = Number(slider.value)
    await api.call('POST', `/api/annotations/${id}/${how}`, { version, doc: 'skeleton' })
    await openHistory() // the new version is the newest: back to now
  }
  for (const name of ['history-restore', 'history-revert']) text(name).hidden = !writable
  text('history-restore').addEventListener('click', () => void act('restore'))
  text('history-revert').addEventListener('click', () => void act('revert'))

  redraw()
  ;(window as unknown as { collab: unknown }).collab = { connection, skeleton: sk, me: me as Me }
}
