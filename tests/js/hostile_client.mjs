// The stock client writes what a careless or hostile user could: a key or a
// value with a NUL character, a huge key, deep nesting. It then reports
// whether it stayed connected once the test closes its stdin (the server
// stores such updates: docs/protocol.md, "Durability and refusals").
// Usage: node hostile_client.mjs <ws-base> <annotationId> <token> <case>
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [base, annotationId, token, which] = process.argv.slice(2)
const doc = new Y.Doc()
const provider = new WebsocketProvider(`${base}/sync/${annotationId}`, 'skeleton', doc, {
  params: { token }, WebSocketPolyfill: WebSocket, disableBc: true
})
let closed = null
provider.on('connection-close', (event) => { if (event) closed = { code: event.code, reason: event.reason } })
const deadline = setTimeout(() => { console.log(JSON.stringify({ ok: false, error: 'timeout' })); process.exit(1) }, 15000)
provider.on('sync', (synced) => {
  if (!synced) return
  // A comment needs its node (else the server's repair removes it).
  const comment = (node, text) => doc.transact(() => {
    const tree = new Y.Map()
    tree.set('name', 'hostile')
    doc.getMap('trees').set('ht', tree)
    doc.getMap('nodes').set(node, { treeId: 'ht', position: [1, 1, 1] })
    doc.getMap('comments').set(node, text)
  })
  if (which === 'nul-comment') comment('\u0000', 'x')
  else if (which === 'nul-value') comment('n1', 'a\u0000b')
  else if (which === 'huge-key') comment('k'.repeat(100000), 'x')
  console.log(JSON.stringify({ written: true }))
})
// The test watches the effect from its own clients, then closes our stdin.
process.stdin.on('end', () => {
  clearTimeout(deadline)
  console.log(JSON.stringify({ ok: true, closed }))
  provider.destroy()
  process.exit(0)
})
process.stdin.resume()
