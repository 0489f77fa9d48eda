// Applies a Yjs update (hex, first argument) with the stock yjs package and
// prints the named top-level maps as JSON: the other side of
// tests/document/test_update_builder.py.
import * as Y from 'yjs'

const doc = new Y.Doc()
Y.applyUpdate(doc, Buffer.from(process.argv[2], 'hex'))
const out = {}
for (const name of process.argv.slice(3)) out[name] = doc.getMap(name).toJSON()
console.log(JSON.stringify(out))
