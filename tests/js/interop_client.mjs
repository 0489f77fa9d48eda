// The stock Yjs + y-websocket client, as a browser would use it, run in Node.
// Usage: node interop_client.mjs <ws-base> <annotationId> <token> <nodeId-to-write> <nodeId-to-wait-for>
// Prints one JSON line with what it saw once it holds both nodes, then stays
// connected until its stdin closes (the caller has seen our node arrive) and
// exits 0; on timeout it prints {ok: false} and exits 1.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [base, annotationId, token, mine, theirs] = process.argv.slice(2)
const doc = new Y.Doc()
const provider = new WebsocketProvider(`${base}/sync/${annotationId}`, 'skeleton', doc, {
  params: { token },
  WebSocketPolyfill: WebSocket,
  disableBc: true // otherwise two providers in one process sync without the server
})
provider.awareness.setLocalStateField('user', { name: 'node-client' })
const nodes = doc.getMap('nodes')
const trees = doc.getMap('trees')
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, reason: 'timeout', nodes: nodes.toJSON() }))
  process.exit(1)
}, 15000)

provider.on('sync', (synced) => {
  if (!synced) return
  doc.transact(() => {
    const tree = new Y.Map()
    tree.set('name', 'traced in node')
    tree.set('color', [0, 1, 0, 1])
    trees.set('node-tree', tree)
    nodes.set(mine, { treeId: 'node-tree', position: [7, 8, 9], radius: 1.5 })
  })
  check()
})
nodes.observe(check)

let done = false
function check () {
  if (done || !provider.synced || !nodes.has(theirs) || !nodes.has(mine)) return
  done = true
  console.log(JSON.stringify({ ok: true, nodes: nodes.toJSON(), awareness: provider.awareness.getStates().size }))
  // Our own update may still be on its way: close only when told to.
  process.stdin.on('end', () => {
    clearTimeout(timer)
    provider.destroy()
    process.exit(0)
  })
  process.stdin.resume()
}
