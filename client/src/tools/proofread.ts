// The proofreading tool (../shared/wk-habits.md, "Proofreading"): a small
// state machine over the layer's editable mapping. Left click picks the
// active segment (a supervoxel and where it was clicked; its agglomerate is
// the active one); Shift+click merges the clicked supervoxel's agglomerate
// into the active one; Ctrl+click splits the active agglomerate by the
// minimum cut between the active supervoxel (source) and the clicked one
// (sink). Merges and splits are requests to the server (docs/api.md,
// "Proofreading"), which writes the op (`pr-<seq>`) into the segmentation
// document; a refusal comes back with the server's message.
//
// Undo deletes this page's own last op from the document (the server then
// rebuilds the mapping without it), as undo deletes a stroke's op; it never
// touches anyone else's. The ops are the server's writes, so no
// Y.UndoManager tracks them: this keeps their keys, and PageUndo
// (../sync/undo.ts) orders them among the page's other edits. Redo sends
// the request again (a client may not write a proofreading op itself). An
// op undone before its answer came, or before the document brought it, is
// deleted once it is there. Pure apart from the requests and the
// document it is handed: client/test/proofread.test.ts.

import type { SegmentId } from '../segmentation/segment_id'
import type { MergeAnswer, SplitAnswer, Vec3 } from '../proofreading/requests'
import type { UndoSource } from '../sync/undo'

export interface Requests {
  merge(a: SegmentId, b: SegmentId, positions: Vec3[]): Promise<MergeAnswer>
  split(sources: SegmentId[], sinks: SegmentId[], positions: Vec3[]): Promise<SplitAnswer>
}

/** The document's `ops` as the tool needs them. */
export interface Ops {
  has(key: string): boolean
  /** Delete an op (not as an edit any Y.UndoManager tracks). */
  delete(key: string): void
}

export type ClickKind = 'pick' | 'merge' | 'split'

/** WEBKNOSSOS's proofreading clicks: Shift merges, Ctrl (⌘) splits, a plain click picks. */
export function clickKind(event: { shiftKey: boolean; ctrlKey: boolean; metaKey: boolean }): ClickKind {
  if (event.ctrlKey || event.metaKey) return 'split'
  return event.shiftKey ? 'merge' : 'pick'
}

export interface ActiveSegment {
  supervoxel: SegmentId
  /** Where it was clicked (mag-1 voxels): the crosshair. */
  position: Vec3
}

type Request =
  | { kind: 'merge'; a: SegmentId; b: SegmentId; positions: Vec3[] }
  | { kind: 'split'; sources: SegmentId[]; sinks: SegmentId[]; positions: Vec3[] }

interface Entry {
  request: Request
  /** The op's key once the server answered. */
  key: string | null
  /** Undone before it could be deleted: deleted when it is there. */
  undo: boolean
  /** The page's document has had the op. */
  seen: boolean
  /** The server refused it: nothing to undo (kept so that undo keeps the page's order). */
  refused: boolean
}

export class Proofreader implements UndoSource {
  active: ActiveSegment | null = null
  /** Requests on their way. */
  busy = 0
  /** The last thing to tell the user (a refusal, or what happened). */
  message: { text: string; error: boolean } | null = null
  /** Ops this page wrote, answered or not, and those it undid (latest last). */
  private done: Entry[] = []
  private undone: Entry[] = []
  /** Set by PageUndo: the page made an edit here. */
  added: () => void = () => undefined
  onChange: () => void = () => undefined

  constructor(
    private readonly requests: Requests,
    private readonly ops: Ops,
  ) {}

  /** Left click: the clicked supervoxel becomes the active segment. */
  pick(supervoxel: SegmentId, position: Vec3): void {
    this.active = { supervoxel, position }
    this.message = null
    this.onChange()
  }

  clear(): void {
    this.active = null
    this.onChange()
  }

  /** Shift+click: the clicked supervoxel's agglomerate joins the active one. */
  merge(supervoxel: SegmentId, position: Vec3): Promise<void> {
    const active = this.needActive('merge')
    if (!active) return Promise.resolve()
    return this.send({ kind: 'merge', a: active.supervoxel, b: supervoxel, positions: [active.position, position] }, true)
  }

  /** Ctrl+click: the active agglomerate is cut between the active supervoxel and the clicked one. */
  split(supervoxel: SegmentId, position: Vec3): Promise<void> {
    const active = this.needActive('split')
    if (!active) return Promise.resolve()
    return this.send(
      { kind: 'split', sources: [active.supervoxel], sinks: [supervoxel], positions: [active.position, position] },
      true,
    )
  }

  private needActive(what: string): ActiveSegment | null {
    if (!this.active) this.say(`pick the active segment first (left click), then ${what}`, true)
    return this.active
  }

  private say(text: string, error: boolean): void {
    this.message = { text, error }
    this.onChange()
  }

  private async send(request: Request, fresh: boolean): Promise<void> {
    const entry: Entry = { request, key: null, undo: false, seen: false, refused: false }
    this.done.push(entry)
    if (fresh) {
      this.undone = []
      this.added()
    }
    this.busy += 1
    this.message = { text: request.kind === 'merge' ? 'merging…' : 'splitting…', error: false }
    this.onChange()
    try {
      if (request.kind === 'merge') {
        const answer = await this.requests.merge(request.a, request.b, request.positions)
        entry.key = answer.op
        this.message = { text: `merged agglomerate ${answer.merged} into ${answer.agglomerate}`, error: false }
      } else {
        const answer = await this.requests.split(request.sources, request.sinks, request.positions)
        entry.key = answer.op
        const [kept, parted] = answer.agglomerates
        this.message = {
          text: `split agglomerate ${answer.agglomerate}: ${answer.cut.length} edge(s) cut, ${kept} and ${parted}`,
          error: false,
        }
      }
      this.settle(entry)
    } catch (error) {
      entry.refused = true
      this.message = { text: error instanceof Error ? error.message : String(error), error: true }
    } finally {
      this.busy -= 1
      this.onChange()
    }
  }

  /** The document now has (or had) ``key``: an op waiting to be undone goes. */
  seen(key: string): void {
    const entry = [...this.done, ...this.undone].find((e) => e.key === key)
    if (!entry) return
    entry.seen = true
    this.settle(entry)
  }

  private settle(entry: Entry): void {
    if (entry.key === null) return
    if (this.ops.has(entry.key)) entry.seen = true
    if (entry.undo && entry.seen && this.ops.has(entry.key)) {
      this.ops.delete(entry.key)
      entry.undo = false
    }
  }

  /** Ctrl+Z: delete this page's last op; false when it is gone already (reverted meanwhile). */
  undo(): boolean {
    const entry = this.done.pop()
    if (!entry || entry.refused) return false
    if (entry.key !== null && entry.seen && !this.ops.has(entry.key)) return false
    entry.undo = true
    this.undone.push(entry)
    this.settle(entry)
    this.onChange()
    return true
  }

  /** Ctrl+Y: the undone request is sent again (a new op). */
  redo(): boolean {
    const entry = this.undone.pop()
    if (!entry) return false
    if (entry.undo) {
      // Not deleted yet (its answer or the document had not come): it simply stays.
      entry.undo = false
      this.done.push(entry)
      return true
    }
    void this.send(entry.request, false)
    return true
  }

  get canUndo(): boolean {
    return this.done.some((e) => !e.refused)
  }
}
