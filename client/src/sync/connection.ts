// One document of an annotation over the y-websocket protocol
// (docs/protocol.md): the stock WebsocketProvider plus collab's "saved"
// message (type 100: every version up to N is durable), its "accepted"
// message (type 101: one per update message the server takes, in order: the
// version holding it) and the read-only notice (auth "permission denied").
//
// Pending changes are counted exactly. Local changes are numbered. Each
// message that carries them gets one "accepted" answer, in the order sent
// (one TCP stream): an update sent while connected carries its change; the
// sync step 2 answering the server's step 1 on (re)connection carries all
// changes made so far that the server lacks. So the k-th "accepted" version
// holds every change up to the number recorded when the k-th such message
// went out; once "saved" reaches it, those are durable. Messages in flight
// when a connection drops are covered by the next connection's step 2.

import * as decoding from 'lib0/decoding'
import { IndexeddbPersistence } from 'y-indexeddb'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

export const MESSAGE_SAVED = 100
export const MESSAGE_ACCEPTED = 101
const BASE_BACKOFF_MS = 250
const MAX_BACKOFF_MS = 10_000

export type Status = 'connecting' | 'connected' | 'disconnected'

export interface ConnectionState {
  status: Status
  synced: boolean
  /** Every version up to this one is stored (the server's "saved" acks). */
  savedVersion: number
  /** Local changes made since the last acknowledgement that followed them. */
  pending: number
  readOnly: boolean
  /** Why the server closed the socket for good (a final 44xx close), if it did. */
  refused: string | null
}

export class Connection {
  readonly doc: Y.Doc
  readonly provider: WebsocketProvider
  /** This browser's copy of the document: changes made offline survive a
   *  closed tab and are sent (in the step 2) when the page connects again. */
  readonly local: IndexeddbPersistence | null
  readonly state: ConnectionState = {
    status: 'connecting',
    synced: false,
    savedVersion: 0,
    pending: 0,
    readOnly: false,
    refused: null,
  }
  private readonly listeners = new Set<(state: ConnectionState) => void>()
  private attempts = 0
  private retry = 0
  /** Local changes made so far, and how many of them are durable. */
  private changes = 0
  private durable = 0
  /** Per message awaiting "accepted": the local changes it completes. */
  private inFlight: number[] = []
  /** (version, local changes it completes), oldest first, not yet saved. */
  private accepted: [number, number][] = []
  /** Who waits for the version holding a local change: (change, resolve). */
  private waiting: [number, (version: number) => void][] = []

  constructor(
    annotation: number,
    kind: 'skeleton' | 'segmentation',
    token: string,
    keepLocally: boolean,
    doc = new Y.Doc(),
  ) {
    this.doc = doc
    // Counted before the provider connects: changes loaded from this
    // browser's copy are pending until a saved version holds them.
    this.local = keepLocally ? new IndexeddbPersistence(`collab/${location.host}/${annotation}/${kind}`, doc) : null
    const base = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sync/${annotation}`
    // Reconnection is ours: exponential backoff with full jitter, so a
    // restarted server is not met by every page at the same instant. The
    // provider is told never to reconnect by itself after a server close; a
    // final close (4400-4499: docs/protocol.md) is not retried at all.
    this.provider = new WebsocketProvider(base, kind, doc, {
      params: { token, acks: '1', accepted: '1' },
      shouldReconnect: () => false,
    })
    this.provider.on('closed', ({ code }) => {
      if (code >= 4400 && code < 4500) return
      const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(this.attempts, 10))
      this.attempts += 1
      this.retry = window.setTimeout(() => this.provider.connect(), Math.random() * ceiling)
    })
    this.provider.messageHandlers[MESSAGE_SAVED] = (_encoder, decoder) => {
      this.state.savedVersion = Math.max(this.state.savedVersion, decoding.readVarUint(decoder))
      this.settle()
    }
    this.provider.messageHandlers[MESSAGE_ACCEPTED] = (_encoder, decoder) => {
      const version = decoding.readVarUint(decoder)
      const upTo = this.inFlight.shift()
      if (upTo !== undefined) {
        this.accepted.push([version, upTo])
        const ready = this.waiting.filter(([change]) => change <= upTo)
        this.waiting = this.waiting.filter(([change]) => change > upTo)
        for (const [, resolve] of ready) resolve(version)
      }
      this.settle()
    }
    // The server's sync step 1 is answered with our step 2: all it lacks.
    // (``fromSocket``: y-websocket's flag for messages from the WebSocket;
    // other tabs' messages come over a BroadcastChannel and answer there.)
    const sync = this.provider.messageHandlers[0]
    this.provider.messageHandlers[0] = (encoder, decoder, provider, fromSocket, type) => {
      const step1 = decoding.peekVarUint(decoder) === 0
      sync(encoder, decoder, provider, fromSocket, type)
      if (step1 && fromSocket) this.inFlight.push(this.changes)
    }
    this.provider.on('status', ({ status }) => {
      this.state.status = status
      if (status === 'connected') this.attempts = 0
      if (status !== 'connected') this.inFlight = [] // the next step 2 covers them
      this.emit()
    })
    this.provider.on('sync', (synced: boolean) => {
      this.state.synced = synced
      this.emit()
    })
    this.provider.on('connection-close', (event) => {
      if (event && event.code >= 4400 && event.code < 4500) {
        this.state.refused = `${event.code} ${event.reason}`
        this.emit()
      }
    })
    // The server answers a read-only client's update with "permission denied".
    const deny = this.provider.messageHandlers[2]
    this.provider.messageHandlers[2] = (encoder, decoder, provider, emitSynced, type) => {
      this.state.readOnly = true
      this.emit()
      deny(encoder, decoder, provider, emitSynced, type)
    }
    doc.on('update', (_update: Uint8Array, origin: unknown) => {
      if (origin === this.provider) return
      this.changes += 1
      if (this.provider.wsconnected) this.inFlight.push(this.changes) // sent as it is
      this.settle()
    })
  }

  /** Local changes made so far: the number of the one just made. */
  get changeCount(): number {
    return this.changes
  }

  /** The version the server took local change ``change`` in (its "accepted"
   *  answer; after a lost connection, the step 2 that carried it again). */
  versionHolding(change: number): Promise<number> {
    return new Promise((resolve) => this.waiting.push([change, resolve]))
  }

  /** Count what a saved version holds as durable. */
  private settle(): void {
    while (this.accepted.length && this.accepted[0][0] <= this.state.savedVersion) {
      this.durable = Math.max(this.durable, (this.accepted.shift() as [number, number])[1])
    }
    this.state.pending = this.changes - this.durable
    this.emit()
  }

  onChange(listener: (state: ConnectionState) => void): () => void {
    this.listeners.add(listener)
    listener(this.state)
    return () => this.listeners.delete(listener)
  }

  private emit(): void {
    for (const listener of this.listeners) listener(this.state)
  }

  destroy(): void {
    clearTimeout(this.retry)
    this.provider.destroy()
    void this.local?.destroy()
  }
}

export function describe(state: ConnectionState): string {
  if (state.refused) return `refused: ${state.refused}`
  if (state.status !== 'connected') {
    return state.pending ? `offline — ${state.pending} change(s) not saved yet` : 'offline'
  }
  if (!state.synced) return 'connecting…'
  const saved = `saved up to version ${state.savedVersion}`
  return state.pending ? `saving… (${state.pending} pending) — ${saved}` : saved
}
