// The page's undo and redo (Ctrl+Z, Ctrl+Y / Ctrl+Shift+Z) over several
// documents: each document has its own Y.UndoManager tracking the page's
// own origin (never anyone else's edits); this keeps the order the page's
// edits were made in across them, so Ctrl+Z undoes the last edit whichever
// document it went to (a stroke, then a node: the node first). Edits that
// no Y.UndoManager tracks (proofreading ops, which the server writes:
// ../tools/proofread.ts) come from an UndoSource in the same order. A new
// edit forgets what was undone, as in WEBKNOSSOS. Pure:
// client/test/undo.test.ts.

import type * as Y from 'yjs'

/** An undoable history that is not a Y.UndoManager's. */
export interface UndoSource {
  /** Undo its latest edit; false when there was nothing (left) to undo. */
  undo(): boolean
  redo(): boolean
  /** Set by PageUndo: the source calls it when the page made a new edit there. */
  added: () => void
}

interface Steps {
  undo(): unknown
  redo(): unknown
}

export class PageUndo {
  /** Which manager holds each undoable edit, the latest last. */
  private done: string[] = []
  private undone: string[] = []
  private replaying = false
  private readonly steps: Record<string, Steps> = {}
  onChange: () => void = () => undefined

  constructor(managers: Record<string, Y.UndoManager>, sources: Record<string, UndoSource> = {}) {
    for (const [name, manager] of Object.entries(managers)) {
      this.steps[name] = manager
      manager.on('stack-item-added', (event: { type: 'undo' | 'redo' }) => {
        if (event.type === 'undo') this.added(name)
      })
      manager.on('stack-cleared', () => {
        this.done = this.done.filter((n) => n !== name)
        this.undone = this.undone.filter((n) => n !== name)
      })
    }
    for (const [name, source] of Object.entries(sources)) {
      this.steps[name] = { undo: () => source.undo() || null, redo: () => source.redo() || null }
      source.added = () => this.added(name)
    }
  }

  private added(name: string): void {
    if (this.replaying) return
    this.done.push(name)
    this.undone = []
    this.onChange()
  }

  get canUndo(): boolean {
    return this.done.length > 0
  }

  get canRedo(): boolean {
    return this.undone.length > 0
  }

  /** Undo the page's latest edit; says which document it was in (null: nothing to undo). */
  undo(): string | null {
    return this.step(this.done, this.undone, (m) => m.undo())
  }

  redo(): string | null {
    return this.step(this.undone, this.done, (m) => m.redo())
  }

  private step(from: string[], to: string[], run: (m: Steps) => unknown): string | null {
    while (from.length) {
      const name = from.pop() as string
      const steps = this.steps[name]
      this.replaying = true
      let item: unknown
      try {
        item = run(steps)
      } finally {
        this.replaying = false
      }
      if (item == null) continue // that manager had nothing left (cleared meanwhile)
      to.push(name)
      this.onChange()
      return name
    }
    return null
  }
}
