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
// 'closed' comes last in the provider's close handling: once it has come
// with shouldConnect false and no socket, the reconnect it scheduled is a
// no-op and nothing can schedule another, so the count of attempts is final.
provider.on('closed', (event) => {
  const final = !provider.shouldConnect && provider.ws === null
  console.log(JSON.stringify({ attempts, closed: { code: event.code, reason: event.reason }, final }))
  provider.destroy()
  process.exit(0)
})
setTimeout(() => {
  console.log(JSON.stringify({ attempts, closed: null, final: false }))
  provider.destroy()
  process.exit(1)
}, 15000)
