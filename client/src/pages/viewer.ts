// The annotation page, laid out as WEBKNOSSOS's: the XY, YZ and XZ planes
// of the volume with the skeleton near each, and a 3D view of the whole
// skeleton and the planes; others' cursors live; the connection's saved
// state always visible; the history with replay, restore and revert; the
// view (position, zoom, brightness, contrast) in the URL.
//
// Controls as in WEBKNOSSOS (../shared/wk-habits.md): left click places a
// node connected to the active one; right click selects the nearest node;
// scroll or f/d moves through slices, Alt+scroll zooms; Delete removes the
// active node; B marks a branchpoint, J jumps to the last one, C starts a
// new tree; Ctrl+Z / Ctrl+Y undo and redo this page's edits only (strokes
// and skeleton edits alike). The segmentation document is synced too: its
// volume layer is drawn over the EM and painted with the volume tools
// (./volume_tools.ts).

import { Api, type Me } from '../api'
import { Connection, describe } from '../sync/connection'
import { History } from '../sync/replay'
import { SkeletonDoc, type Vec3 } from '../skeleton/model'
import { Overview } from '../view/overview'
import { renderTreeList } from './tree_list'
import { type Contrast, PLANES, type Peer, PlaneView, type Scene } from '../view/plane'
import { VolumeCanvas } from '../view/volume_gl'
import { type MenuItem, openContextMenu } from './context_menu'
import { openLayers, segmentColour } from '../volume/layers'
import { SegmentationDoc } from '../segmentation/model'
import type { BoundingBox } from '../segmentation/ops'
import { PageUndo } from '../sync/undo'
import { VolumeTools } from './volume_tools'

const USER_COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#46f0f0', '#f032e6']

export async function viewer(root: HTMLElement, api: Api, id: number): Promise<void> {
  const [info, me] = await Promise.all([api.annotation(id), api.me()])
  // Only a writer keeps a local copy (what a read-only page holds is the server's).
  const connection = new Connection(id, 'skeleton', api.token, info.access !== 'read')
  const sk = new SkeletonDoc(connection.doc)
  // The volume layers, segments and voxel ops: synced, kept and counted the same way.
  const segConnection = new Connection(id, 'segmentation', api.token, info.access !== 'read')
  const seg = new SegmentationDoc(segConnection.doc)
  /** What the plane shows: the live document, or an earlier version while replaying. */
  let view: SkeletonDoc = sk
  const params = new URLSearchParams(location.search)
  const centre: Vec3 = (params.get('pos')?.split(',').map(Number) as Vec3) ?? [128, 128, 64]
  let zoom = Number(params.get('zoom') ?? 1) // screen pixels per voxel
  const contrast: Contrast = {
    brightness: Number(params.get('brightness') ?? 0),
    contrast: Number(params.get('contrast') ?? 1),
  }
  let activeNode: string | null = null
  let activeTree: string | null = null
  const cursor: Vec3 = [...centre]

  root.innerHTML = `
    <header class="bar">
      <a href="/">collab</a>
      <strong data-testid="title"></strong>
      <span data-testid="access" class="badge"></span>
      <span data-testid="task" class="task" hidden>task <span data-testid="task-state"></span>
        <button data-testid="finish">Finish</button>
        <button data-testid="accept">Accept</button>
        <button data-testid="reject">Reject…</button></span>
      <span data-testid="status" class="status">connecting…</span>
      <span data-testid="seg-status" class="seg-status" title="the segmentation document (volume layers, segments, strokes)"></span>
    </header>
    <main class="viewer">
      <div class="planes">
        <canvas data-testid="volume" class="volume" width="1028" height="772"></canvas>
        <canvas data-testid="xy" width="512" height="384" tabindex="0"></canvas>
        <canvas data-testid="yz" width="512" height="384" tabindex="0"></canvas>
        <canvas data-testid="xz" width="512" height="384" tabindex="0"></canvas>
        <canvas data-testid="3d" width="512" height="384"></canvas>
      </div>
      <aside>
        <div data-testid="volume-tools" class="tools" hidden>
          <p><button data-testid="tool-skeleton" title="skeleton (Ctrl+K S)">skeleton</button><button data-testid="tool-brush" title="brush (B; Ctrl+K B)">brush</button><button data-testid="tool-erase" title="eraser (E; Ctrl+Shift+drag with the brush)">erase</button><button data-testid="tool-fill" title="2D fill (F; Ctrl+K F)">fill</button><button data-testid="tool-proofread" title="proofreading (Ctrl+K O): click picks, Shift+click merges, Ctrl+click splits">proofread</button></p>
          <div data-testid="paint-controls">
          <p><label>brush <input type="range" data-testid="brush-size" min="1" max="256" step="1" /></label> <span data-testid="brush-size-value"></span>
             <select data-testid="overwrite" title="Ctrl+drag inverts it for one stroke"><option value="all">overwrite everything</option><option value="empty">only empty voxels</option></select></p>
          <p>segment <span class="swatch" data-testid="active-segment-swatch"></span><span data-testid="active-segment">none</span>
             <button data-testid="new-segment" title="a new segment id (C)">new segment</button> <span data-testid="tool-note" class="error"></span></p>
          </div>
          <p data-testid="proofread-active" hidden>active: <span data-testid="proofread-active-text"></span></p>
        </div>
        <div data-testid="toast" class="toast" role="status" hidden></div>
        <p data-testid="add-volume-layer-row" hidden><button data-testid="add-volume-layer">Add volume layer</button> (over the dataset's segmentation)</p>
        <p data-testid="volume-layer-row" hidden>volume layer: <span data-testid="volume-layer"></span></p>
        <p data-testid="active-mapping-row" hidden><label>coloured by <select data-testid="active-mapping" title="the layer's activeMapping: proofreading edits it"></select></label></p>
        <p><label>brightness <input type="range" data-testid="brightness" min="-0.5" max="0.5" step="0.01" /></label>
           <label>contrast <input type="range" data-testid="contrast" min="0.25" max="4" step="0.05" /></label></p>
        <p data-testid="segmentation-controls" hidden><label><input type="checkbox" data-testid="seg-shown" /> segmentation</label>
           <input type="range" data-testid="seg-alpha" min="0" max="1" step="0.05" />
           <select data-testid="seg-mapping"><option value="">no mapping</option></select></p>
        <p><span data-testid="position"></span> · <span data-testid="node-count">0</span> nodes</p>
        <p>bricks: <span data-testid="bricks">–</span></p>
        <p class="error" data-testid="no-webgl" hidden></p>
        <p>active node: <span data-testid="active-node">none</span></p>
        <p class="node-edit"><label>comment <input data-testid="comment" size="18" /></label>
           <label>radius <input data-testid="radius" type="number" min="0.1" step="0.5" style="width: 5em" /></label></p>
        <h3 class="tabs"><button data-testid="tab-trees" class="tab active">Trees</button><button data-testid="tab-segments" class="tab">Segments</button><button data-testid="tab-connectome" class="tab" hidden>Connectome</button></h3>
        <div data-testid="trees-panel"><ul data-testid="trees" class="trees"></ul></div>
        <div data-testid="segments-panel" hidden><ul data-testid="segments" class="trees segments"></ul></div>
        <div data-testid="connectome-panel" hidden><div data-testid="connectome" class="connectome"></div></div>
        <p><button data-testid="nml-export">Download NML</button>
           <label class="button">Import NML… <input data-testid="nml-import" type="file" accept=".nml,.zip" hidden /></label>
           <span data-testid="nml-status"></span></p>
        <p><label><input type="checkbox" data-testid="classic" /> classic controls (right click places nodes)</label></p>
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
  const text = (name: string) => root.querySelector(`[data-testid="${name}"]`) as HTMLElement
  text('title').textContent = info.name
  const writable = info.access !== 'read'
  text('access').textContent = writable ? '' : 'read-only'

  // A task's annotation: finish it (its annotator), accept or reject it (reviewers).
  if (info.task) {
    const task = info.task
    text('task').hidden = false
    const showTask = () => {
      text('task-state').textContent = task.state.replace('_', ' ')
      text('finish').hidden = !(writable && (task.state === 'in_progress' || task.state === 'rejected'))
      const reviewer = (me.roles ?? []).some((r) => r === 'reviewer' || r === 'admin')
      text('accept').hidden = text('reject').hidden = !(reviewer && task.state === 'finished')
    }
    const attempt = async (action: () => Promise<unknown>, state: string) => {
      try {
        await action()
        task.state = state
      } catch (error) {
        text('task-state').textContent = `${task.state}: ${error instanceof Error ? error.message : error}`
        return
      }
      showTask()
    }
    text('finish').addEventListener('click', () => void attempt(() => api.finish(id), 'finished'))
    text('accept').addEventListener('click', () => void attempt(() => api.review(id, 'accept', ''), 'accepted'))
    text('reject').addEventListener('click', () => {
      const reason = prompt('Why is it rejected? The annotator reads this.')
      if (reason) void attempt(() => api.review(id, 'reject', reason), 'rejected')
    })
    showTask()
  }

  // WEBKNOSSOS's "classic controls" (right click places nodes), kept in this browser.
  let classic = localStorage.getItem('collab.classic') === '1'
  const classicBox = text('classic') as HTMLInputElement
  classicBox.checked = classic
  classicBox.addEventListener('change', () => {
    classic = classicBox.checked
    localStorage.setItem('collab.classic', classic ? '1' : '0')
  })

  const myName = me.name ?? (me.link ? 'guest (share link)' : 'anonymous')
  const myColor = USER_COLORS[(me.id ?? connection.doc.clientID) % USER_COLORS.length]
  const awareness = connection.provider.awareness
  // Presence as the contract shapes it; cursor moves at most every 50 ms (a
  // mouse reports ~100 moves a second and each is a message to everyone).
  let published = 0
  let publishLater = 0
  const publish = () => {
    clearTimeout(publishLater)
    const wait = published + 50 - performance.now()
    if (wait > 0) {
      publishLater = window.setTimeout(publish, wait)
      return
    }
    published = performance.now()
    awareness.setLocalState({
      user: { id: me.id ?? null, name: myName, color: myColor },
      position: [...cursor],
      activeNode,
    })
  }
  publish()

  // The volume of all three planes on one WebGL2 canvas under them (one
  // context: see view/volume_gl.ts), each plane in its canvas's area.
  const volumeCanvas = VolumeCanvas.create(root.querySelector('[data-testid="volume"]') as HTMLCanvasElement)
  if (!volumeCanvas) {
    const note = text('no-webgl')
    note.textContent = 'this browser has no WebGL2: the volume is not drawn (the skeleton is)'
    note.hidden = false
  }
  const planes = PLANES.map((spec) => {
    const canvas = root.querySelector(`[data-testid="${spec.name}"]`) as HTMLCanvasElement
    const area = () => ({ x: canvas.offsetLeft, y: canvas.offsetTop, width: canvas.width, height: canvas.height })
    return new PlaneView(spec, canvas, volumeCanvas?.plane(area) ?? null)
  })
  const overview = new Overview(root.querySelector('[data-testid="3d"]') as HTMLCanvasElement)
  overview.onTurn = () => redraw()
  const layers = info.dataset ? await openLayers(api, info.dataset) : { color: null, segmentation: null }
  const volume = layers.color
  const segmentation = layers.segmentation
  for (const layer of [volume, segmentation]) if (layer) layer.source.onBrick = () => redraw()
  const boxes = [volume, segmentation].flatMap((l) => (l ? [l.info.boundingBox] : []))
  const datasetBox: BoundingBox | null = boxes.length
    ? (() => {
        const low = [0, 1, 2].map((a) => Math.min(...boxes.map((b) => b.topLeft[a])))
        const high = [0, 1, 2].map((a) => Math.max(...boxes.map((b) => b.topLeft[a] + b.size[a])))
        return { topLeft: low, size: high.map((h, a) => h - low[a]) } as BoundingBox
      })()
    : null

  const overlay = {
    shown: params.get('seg') !== '0',
    alpha: Number(params.get('alpha') ?? 0.35),
    mapping: params.get('mapping') || null,
  }
  segmentation?.source.setMapping(overlay.mapping)
  // Where the view is heading: the sign of the last move along each axis.
  const previous: Vec3 = [...centre]
  const heading: Vec3 = [0, 0, 0]
  const scene = (): Scene => ({
    centre,
    zoom,
    heading,
    skeleton: view,
    activeNode,
    peers: peers(),
    volume: volume ? { source: volume.source, mags: volume.mags, contrast } : null,
    // The annotation's volume layer when it has one, else the dataset's segmentation.
    segmentation: !overlay.shown
      ? null
      : (tools.overlay(overlay.alpha) ??
        (segmentation
          ? { source: segmentation.source, mags: segmentation.mags, alpha: overlay.alpha, colour: segmentColour, look: '' }
          : null)),
    brush: tools.brushCursor(),
    marker: tools.marker(),
  })

  // The view in the URL (a link opens the same view), without a history entry per move.
  let urlTimer = 0
  const keepInUrl = () => {
    clearTimeout(urlTimer)
    urlTimer = window.setTimeout(() => {
      const url = new URL(location.href)
      url.searchParams.set('pos', centre.map(Math.round).join(','))
      url.searchParams.set('zoom', String(Math.round(zoom * 1000) / 1000))
      url.searchParams.set('brightness', String(contrast.brightness))
      url.searchParams.set('contrast', String(contrast.contrast))
      if (segmentation || tools.volume) {
        url.searchParams.set('seg', overlay.shown ? '1' : '0')
        url.searchParams.set('alpha', String(overlay.alpha))
        if (overlay.mapping) url.searchParams.set('mapping', overlay.mapping)
        else url.searchParams.delete('mapping')
      }
      history_.replaceState(null, '', url)
    }, 200)
  }
  const history_ = window.history
  {
    const shown = text('seg-shown') as HTMLInputElement
    const alpha = text('seg-alpha') as HTMLInputElement
    const mapping = text('seg-mapping') as HTMLSelectElement
    for (const name of segmentation?.info.mappings ?? []) mapping.append(new Option(name, name))
    shown.checked = overlay.shown
    alpha.value = String(overlay.alpha)
    mapping.value = overlay.mapping ?? ''
    shown.addEventListener('change', () => {
      overlay.shown = shown.checked
      redraw()
    })
    alpha.addEventListener('input', () => {
      overlay.alpha = Number(alpha.value)
      redraw()
    })
    mapping.addEventListener('change', () => {
      overlay.mapping = mapping.value || null
      segmentation?.source.setMapping(overlay.mapping)
      redraw()
    })
  }
  for (const name of ['brightness', 'contrast'] as const) {
    const input = text(name) as HTMLInputElement
    input.value = String(contrast[name])
    input.addEventListener('input', () => {
      contrast[name] = Number(input.value)
      redraw()
    })
  }

  let frame = 0
  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(draw)
  }
  // The volume layer and its tools (they ask for redraws: made once redraw is).
  const tools = new VolumeTools({
    root,
    api,
    annotation: id,
    me,
    seg,
    connection: segConnection,
    writable: info.access !== 'read',
    datasetSegmentation: segmentation,
    datasetBox,
    live: () => view === sk,
    classic: () => classic,
    redraw: () => redraw(),
    centreOn: (p) => {
      centre.splice(0, 3, ...p)
      redraw()
    },
  })

  // Ctrl+Z: the page's last edit, a node, a stroke or a proofreading op.
  const undo = new PageUndo({ skeleton: sk.undo, segmentation: seg.undo }, { proofreading: tools.proofreading.tool })

  function draw(): void {
    frame = 0
    if (centre.some((c, axis) => c !== previous[axis])) {
      for (let axis = 0; axis < 3; axis++) heading[axis] = Math.sign(centre[axis] - previous[axis])
      previous.splice(0, 3, ...centre)
    }
    const now = scene()
    let complete = true
    let filled = true
    for (const plane of planes) {
      plane.draw(now)
      complete &&= plane.complete
      filled &&= plane.filled
    }
    volume?.source.flush()
    segmentation?.source.flush()
    tools.volume?.layer.source.flush()
    // The overlay controls: for the volume layer or the dataset's segmentation
    // (a mapping applies to the dataset's layer only).
    text('segmentation-controls').hidden = !(segmentation || tools.volume)
    text('seg-mapping').hidden = !segmentation?.info.mappings?.length || tools.volume !== null
    tools.render()
    overview.draw(view, centre, [256 / zoom, 192 / zoom, 192 / zoom])
    if (volume) {
      const shown = text('bricks')
      shown.textContent = complete ? 'all in view loaded' : `${volume.source.outstanding} loading`
      shown.dataset.complete = String(complete)
      shown.dataset.filled = String(filled) // EM everywhere, some of it coarser
    }
    text('position').textContent = `${centre.map(Math.round).join(', ')} @ ${zoom.toFixed(2)}×`
    text('node-count').textContent = String(view.index.nodes.size)
    text('active-node').textContent = activeNode ?? 'none'
    showActive()
    showTrees()
    keepInUrl()
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
  segConnection.onChange((state) => {
    const status = text('seg-status')
    status.textContent = `volume: ${describe(state)}`
    status.dataset.saved = String(state.savedVersion)
    status.dataset.pending = String(state.pending)
  })
  segConnection.doc.on('update', redraw)
  connection.onChange((state) => {
    text('status').textContent = describe(state)
    text('status').dataset.saved = String(state.savedVersion)
    if (state.readOnly) text('access').textContent = 'read-only: your edits are not saved'
    void refreshVersions(state.savedVersion).catch(() => undefined)
  })

  // The active node's comment and radius; the tree list (rename, hide, make active).
  const comment = text('comment') as HTMLInputElement
  const radius = text('radius') as HTMLInputElement
  const showActive = () => {
    const node = activeNode ? sk.nodes.get(activeNode) : undefined
    comment.disabled = radius.disabled = !node || !writable
    // Not while the user types in them (a frame comes with every remote edit).
    if (document.activeElement !== comment) comment.value = (activeNode && sk.comments.get(activeNode)) || ''
    if (document.activeElement !== radius) radius.value = node ? String(node.radius) : ''
  }
  comment.addEventListener('change', () => activeNode && sk.setComment(activeNode, comment.value))
  radius.addEventListener('change', () => activeNode && sk.setRadius(activeNode, Number(radius.value)))
  const treeList = text('trees')
  let treesShown = ''
  const showTrees = () => {
    // Rebuilt only when what it shows changed (a click must find its element).
    const shown = JSON.stringify([activeTree, view === sk, view.trees.toJSON(), view.groups.toJSON(), [...view.index.treeCounts]])
    if (shown === treesShown) return
    treesShown = shown
    renderTreeList(treeList, view, sk, {
      activeTree,
      editable: writable && view === sk,
      setActive: (tree) => {
        activeTree = tree
        redraw()
      },
    })
  }

  // NML out and in, through the REST API (docs/api.md).
  text('nml-export').addEventListener('click', async () => {
    const response = await fetch(`/api/annotations/${id}/nml`, {
      headers: { authorization: `Bearer ${api.token}` },
    })
    const link = document.createElement('a')
    link.href = URL.createObjectURL(await response.blob())
    link.download = `${info.name || `annotation-${id}`}.nml`
    link.click()
    URL.revokeObjectURL(link.href)
  })
  const nmlInput = text('nml-import') as HTMLInputElement
  nmlInput.closest('label')!.hidden = !writable
  nmlInput.addEventListener('change', async () => {
    const file = nmlInput.files?.[0]
    if (!file) return
    text('nml-status').textContent = 'importing…'
    const response = await fetch(`/api/annotations/${id}/nml`, {
      method: 'POST',
      headers: { authorization: `Bearer ${api.token}`, 'content-type': file.name.endsWith('.zip') ? 'application/zip' : 'application/xml' },
      body: file,
    })
    const body = await response.json()
    text('nml-status').textContent = response.ok
      ? `imported ${body.trees} trees, ${body.nodes} nodes`
      : `not imported: ${body.error?.message ?? response.statusText}`
    nmlInput.value = ''
  })

  const select = (nid: string | null) => {
    activeNode = nid
    activeTree = nid ? (sk.nodes.get(nid)?.treeId ?? null) : activeTree
    publish()
    redraw()
  }
  // The right-click menu of default controls: a node's actions, or a node here.
  const menu = (event: MouseEvent, plane: PlaneView, hit: string | null, editable: boolean) => {
    const items: MenuItem[] = []
    if (hit) {
      const node = sk.nodes.get(hit)
      const tree = node?.treeId ?? ''
      items.push({ label: 'Select this node', testid: 'menu-select', run: () => select(hit) })
      if (editable) {
        items.push({ label: 'Delete this node', testid: 'menu-delete', run: () => { sk.deleteNode(hit); if (activeNode === hit) select(null) } })
        items.push({ label: 'Mark as branchpoint', testid: 'menu-branchpoint', run: () => sk.setBranchpoint(hit) })
        const active = activeNode
        if (active && active !== hit && sk.nodes.has(active)) {
          if (sk.nodes.get(active)?.treeId !== tree) {
            items.push({ label: 'Create edge & merge with this tree', testid: 'menu-merge', run: () => sk.connect(active, hit) })
          } else if (sk.hasEdge(active, hit)) {
            items.push({ label: 'Delete edge to this node', testid: 'menu-delete-edge', run: () => sk.disconnect(active, hit) })
          }
        }
        items.push({ label: 'Hide this tree', testid: 'menu-hide-tree', run: () => sk.setTreeVisible(tree, false) })
      }
      const length = view.pathLength(tree)
      items.push({
        label: `Path length of this tree: ${length.toFixed(1)} vx`,
        testid: 'menu-path-length',
        run: () => undefined,
      })
      openContextMenu(event.pageX, event.pageY, `node ${hit}`, items)
    } else {
      const p = plane.toVoxel(event.offsetX, event.offsetY, scene())
      if (editable) {
        items.push({
          label: 'Create node here',
          testid: 'menu-create-node',
          run: () => {
            const valid = activeNode !== null && sk.nodes.has(activeNode) ? activeNode : null
            select(sk.addNode(p, activeTree, valid))
          },
        })
      }
      items.push({
        label: 'Centre the view here',
        testid: 'menu-centre',
        run: () => {
          centre.splice(0, 3, ...p)
          redraw()
        },
      })
      openContextMenu(event.pageX, event.pageY, `position ${p.join(', ')}`, items)
    }
  }
  for (const plane of planes) {
    const canvas = plane.canvas
    const w = plane.spec.w
    canvas.addEventListener('mousemove', (event) => {
      const now = scene()
      cursor.splice(0, 3, ...plane.toVoxel(event.offsetX, event.offsetY, now))
      publish()
      tools.mousemove(plane, event, now)
    })
    canvas.addEventListener('mouseleave', () => tools.mouseleave(plane))
    canvas.addEventListener('contextmenu', (event) => event.preventDefault())
    // WEBKNOSSOS's default controls (classic: right click places, Shift+click selects).
    let dragging: string | null = null
    canvas.addEventListener('mousedown', (event) => {
      canvas.focus()
      const now = scene()
      if (tools.mousedown(plane, event, now)) return // a volume tool took it
      const hit = plane.nearest(event.offsetX, event.offsetY, now)
      const editable = writable && view === sk
      const place = classic ? event.button === 2 : event.button === 0 && !(event.shiftKey && !event.altKey && !event.ctrlKey)
      if (event.button === 0 && event.shiftKey && event.altKey && hit && activeNode && editable) {
        sk.connect(activeNode, hit) // join the two trees
      } else if (event.button === 0 && event.shiftKey && event.ctrlKey && hit && activeNode && editable) {
        sk.disconnect(activeNode, hit) // delete the edge (split)
      } else if (!classic && event.button === 2) {
        menu(event, plane, hit, editable)
      } else if (hit && event.button === 0) {
        select(hit)
        if (event.button === 0 && editable) dragging = hit
      } else if (place && editable) {
        const p = plane.toVoxel(event.offsetX, event.offsetY, now)
        const valid = activeNode !== null && sk.nodes.has(activeNode) ? activeNode : null
        const created = sk.addNode(p, activeTree, valid)
        if (!event.ctrlKey) select(created) // Ctrl: place without activating
      }
      redraw()
    })
    canvas.addEventListener('mousemove', (event) => {
      if (!dragging || !(event.buttons & 1)) return
      const to = plane.toVoxel(event.offsetX, event.offsetY, scene())
      const at = sk.nodes.get(dragging)?.position
      if (at && to.some((c, i) => c !== at[i])) sk.moveNode(dragging, to) // a version per voxel moved
    })
    window.addEventListener('mouseup', () => (dragging = null))
    canvas.addEventListener('wheel', (event) => {
      event.preventDefault()
      if (tools.wheel(event)) return // the brush size
      if (event.shiftKey && activeNode && writable && view === sk) {
        const node = sk.nodes.get(activeNode)
        if (node) sk.setRadius(activeNode, Math.max(0.5, node.radius * (event.deltaY < 0 ? 1.1 : 0.9)))
      } else if (event.altKey || event.ctrlKey) zoom = Math.min(32, Math.max(1 / 32, zoom * (event.deltaY < 0 ? 1.25 : 0.8)))
      else centre[w] += event.deltaY < 0 ? 1 : -1
      redraw()
    })
    canvas.addEventListener('keydown', (event) => keys(event, plane))
  }

  // A stroke ends wherever the button is released.
  window.addEventListener('mouseup', () => tools.mouseup())

  function keys(event: KeyboardEvent, plane: PlaneView): void {
    const key = event.key.toLowerCase()
    const { u, v, w } = plane.spec
    const ctrl = event.ctrlKey || event.metaKey
    if (ctrl && (key === 'z' || key === 'y')) {
      // This page's last edit, whichever document it went to; never anyone else's.
      event.preventDefault()
      if (view !== sk) return
      if (key === 'y' || event.shiftKey) undo.redo()
      else undo.undo()
      if (activeNode && !sk.nodes.has(activeNode)) select(null)
      redraw()
      return
    }
    if (tools.key(event)) {
      redraw()
      return
    }
    if (key === 'f' || (key === ' ' && !event.shiftKey)) centre[w] += event.shiftKey && key === 'f' ? 5 : 1
    else if (key === 'd' || key === ' ') centre[w] -= event.shiftKey && key === 'd' ? 5 : 1
    else if (key === 's' && activeNode) {
      const node = view.nodes.get(activeNode)
      if (node) centre.splice(0, 3, ...node.position)
    }
    else if (key === 'i') zoom = Math.min(32, zoom * 1.25)
    else if (key === 'o') zoom = Math.max(1 / 32, zoom * 0.8)
    else if (key === 'arrowleft') centre[u] -= 10 / zoom
    else if (key === 'arrowright') centre[u] += 10 / zoom
    else if (key === 'arrowup') centre[v] -= 10 / zoom
    else if (key === 'arrowdown') centre[v] += 10 / zoom
    else if (key === 'j') {
      const target = view.lastBranchpoint()
      if (target) {
        const node = view.nodes.get(target)
        if (node) centre.splice(0, 3, ...node.position)
        select(target)
      }
    } else if (!writable || view !== sk) return
    else if ((key === 'delete' || key === 'backspace') && activeNode) {
      sk.deleteNode(activeNode)
      select(null)
    } else if (key === 'b' && activeNode) sk.setBranchpoint(activeNode)
    else if (key === 'c') {
      activeTree = sk.createTree()
      select(null)
    } else return
    redraw()
  }

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
  ;(window as unknown as { collab: unknown }).collab = {
    connection,
    skeleton: sk,
    segConnection,
    segmentation: seg,
    tools,
    undo,
    me: me as Me,
  }
}
