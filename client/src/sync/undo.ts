// The page's undo and redo (Ctrl+Z, Ctrl+Y / Ctrl+Shift+Z) over several
// documents: each document has its own Y.UndoManager tracking the page's
// own origin (never anyone else's edits); this keeps the order the page's
// edits were made in across them, so Ctrl+Z undoes the last edit whichever
// document it went to (a stroke, then a node: the node first). A new edit
// forgets what was undone, as in WEBKNOSSOS. Pure: client/test/undo.test.ts.

import type * as Y from 'yjs'

export class PageUndo {
  /** Which manager holds each undoable edit, the latest last. */
  private done: string[] = []
  private undone: string[] = []
  private replaying = false
  onChange: () => void = () => undefined

  constructor(private readonly managers: Record<string, Y.UndoManager>) {
    for (const [name, manager] of Object.entries(managers)) {
      manager.on('stack-item-added', (event: { type: 'undo' | 'redo' }) => {
        if (this.replaying || event.type !== 'undo') return
        this.done.push(name)
        this.undone = []
        this.onChange()
      })
      manager.on('stack-cleared', () => {
        this.done = this.done.filter((n) => n !== name)
        this.undone = this.undone.filter((n) => n !== name)
      })
    }
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

  private step(from: string[], to: string[], run: (m: Y.UndoManager) => unknown): string | null {
    while (from.length) {
      const name = from.pop() as string
      const manager = this.managers[name]
      this.replaying = true
      let item: unknown
      try {
        item = run(manager)
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
