// Encodes the golden messages with lib0 + y-protocols (what the stock client
// uses) and compares them with tests/golden/sync_messages.json. Exit 0 = equal.
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as authProtocol from 'y-protocols/auth'
import * as Y from 'yjs'
import { readFileSync } from 'node:fs'

const golden = JSON.parse(readFileSync(new URL('../golden/sync_messages.json', import.meta.url)))
const hex = (u8) => Buffer.from(u8).toString('hex')
const build = (fn) => { const e = encoding.createEncoder(); fn(e); return hex(encoding.toUint8Array(e)) }

const got = {
  sync_step1_empty: build((e) => { encoding.writeVarUint(e, 0); syncProtocol.writeSyncStep1(e, new Y.Doc()) }),
  update_empty: build((e) => { encoding.writeVarUint(e, 0); syncProtocol.writeUpdate(e, new Uint8Array([0, 0])) }),
  saved_300: build((e) => { encoding.writeVarUint(e, 100); encoding.writeVarUint(e, 300) }),
  auth_denied_no: build((e) => { encoding.writeVarUint(e, 2); authProtocol.writePermissionDenied(e, 'no') }),
  query_awareness: build((e) => { encoding.writeVarUint(e, 3) }),
  awareness_client7_clock2: build((e) => {
    encoding.writeVarUint(e, 1)
    const inner = encoding.createEncoder()
    encoding.writeVarUint(inner, 1)
    encoding.writeVarUint(inner, 7)
    encoding.writeVarUint(inner, 2)
    encoding.writeVarString(inner, golden.awareness_client7_clock2_state)
    encoding.writeVarUint8Array(e, encoding.toUint8Array(inner))
  })
}
let ok = true
for (const [name, value] of Object.entries(got)) {
  if (golden[name] !== value) { ok = false; console.log(`MISMATCH ${name}: golden ${golden[name]} lib0 ${value}`) }
}
console.log(ok ? 'golden bytes match' : 'golden bytes differ')
process.exit(ok ? 0 : 1)
