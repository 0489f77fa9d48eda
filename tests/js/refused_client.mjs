// The stock client against a refusal: it must get our close code and stop
// reconnecting (y-websocket treats 4400-4499 as final and emits 'closed').
// Usage: node refused_client.mjs <ws-base> <annotationId> <token>
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [base, annotationId, token] = process.argv.slice(2)
let attempts = 0
class CountingWebSocket extends WebSocket {
  constructor (...args) { super(...args); attempts++ }
}
const provider = new WebsocketProvider(`${base}/sync/${annotationId}`, 'skeleton', new Y.Doc(), {
  params: { token }, WebSocketPolyfill: CountingWebSocket, disableBc: true
})
let closed = null
provider.on('closed', (event) => { closed = { code: event.code, reason: event.reason } })
// Reconnects would come within 100-400 ms; watch for 2 s.
setTimeout(() => {
  console.log(JSON.stringify({ attempts, closed }))
  provider.destroy()
  process.exit(0)
}, 2000)
