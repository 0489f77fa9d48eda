// The annotation's history in the page: every version's update over the
// replay socket (docs/protocol.md, "Replay"), and the document as it was
// after any version, built by applying them in order to a fresh Y.Doc.

import * as decoding from 'lib0/decoding'
import * as Y from 'yjs'

export interface VersionMeta {
  version: number
  time: string
  author: number | null
  summary: Record<string, unknown>
}

export class History {
  readonly versions: VersionMeta[] = []
  private readonly updates: Uint8Array[] = [] // updates[k] makes version k + 1
  private doc: Y.Doc = new Y.Doc()
  private built = 0

  /** Load every version up to the newest (the replay socket at full speed). */
  static async load(annotation: number, kind: string, token: string): Promise<History> {
    const history = new History()
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    const ws = new WebSocket(
      `${scheme}://${location.host}/replay/${annotation}/${kind}?token=${encodeURIComponent(token)}&speed=0`,
    )
    ws.binaryType = 'arraybuffer'
    await new Promise<void>((resolve, reject) => {
      ws.onmessage = (event) => {
        if (typeof event.data === 'string') {
          const meta = JSON.parse(event.data)
          if (meta.type === 'version') history.versions.push(meta)
          return
        }
        // A y-protocol sync message: type 0, sub-type 2 (update), the update.
        const decoder = decoding.createDecoder(new Uint8Array(event.data as ArrayBuffer))
        decoding.readVarUint(decoder)
        decoding.readVarUint(decoder)
        history.updates.push(decoding.readVarUint8Array(decoder))
      }
      ws.onclose = (event) => (event.code === 1000 ? resolve() : reject(new Error(`replay closed ${event.code} ${event.reason}`)))
      ws.onerror = () => reject(new Error('replay socket failed'))
    })
    return history
  }

  get head(): number {
    return this.updates.length
  }

  /** The document right after ``version`` (0: empty); read it, never edit it. */
  at(version: number): Y.Doc {
    const target = Math.max(0, Math.min(version, this.updates.length))
    if (target < this.built) {
      this.doc.destroy()
      this.doc = new Y.Doc()
      this.built = 0
    }
    Y.transact(this.doc, () => {
      for (; this.built < target; this.built++) Y.applyUpdate(this.doc, this.updates[this.built])
    })
    return this.doc
  }
}
