// A real LiveStore 0.4.0 client (adapter-node, sync-cf) against `eventsync serve`.
// usage: node client.mjs <clientId> <ws|http> <storeId> <n> <expectedTotal> <url> [token]
// Commits n todos `${clientId}-${i}`, waits until it sees expectedTotal todos (60 s at most),
// prints their ids as one line `IDS [...]`, stays online LINGER_MS (default 3 s) so its last pushes
// go out, and exits 0 (or 1 when it did not see expectedTotal todos within 60 s).
import { makeAdapter } from '@livestore/adapter-node'
import { createStorePromise, Events, makeSchema, queryDb, Schema, State } from '@livestore/livestore'
import { makeHttpSync, makeWsSync } from '@livestore/sync-cf/client'

const [clientId, transport, storeId, n, expectedTotal, url, token] = process.argv.slice(2)

// The todo app's v1.TodoCreated event, as eventsync's todo app defines it.
const todos = State.SQLite.table({
  name: 'todos',
  columns: { id: State.SQLite.text({ primaryKey: true }), text: State.SQLite.text({ default: '' }) },
})
const events = {
  todoCreated: Events.synced({
    name: 'v1.TodoCreated',
    schema: Schema.Struct({ id: Schema.String, text: Schema.String }),
  }),
}
const materializers = State.SQLite.materializers(events, {
  'v1.TodoCreated': ({ id, text }) => todos.insert({ id, text }),
})
const schema = makeSchema({ events, state: State.SQLite.makeState({ tables: { todos }, materializers }) })

const backend =
  transport === 'ws' ? makeWsSync({ url }) : makeHttpSync({ url, livePull: { pollInterval: 200 } })
const adapter = makeAdapter({
  storage: { type: 'in-memory' },
  clientId,
  sessionId: `${clientId}-session`,
  sync: { backend, onSyncError: 'shutdown' },
})
const store = await createStorePromise({ schema, adapter, storeId, syncPayload: { authToken: token ?? '' } })
const gap = Number(process.env.COMMIT_GAP_MS ?? 50)
for (let i = 0; i < Number(n); i++) {
  store.commit(events.todoCreated({ id: `${clientId}-${i}`, text: `todo ${i} of ${clientId}` }))
  await new Promise((resolve) => setTimeout(resolve, gap))
}
const deadline = Date.now() + 60_000
let ids = []
while (Date.now() < deadline) {
  ids = store.query(queryDb(todos.select('id'))).map((row) => (typeof row === 'string' ? row : row.id))
  if (ids.length >= Number(expectedTotal)) break
  await new Promise((resolve) => setTimeout(resolve, 100))
}
ids.sort()
console.log(`IDS ${JSON.stringify(ids)}`)
// Seeing every todo locally does not mean this client's last pushes went out: stay online a
// while so they do (the run checks the server's log afterwards; no time is asserted).
await new Promise((resolve) => setTimeout(resolve, Number(process.env.LINGER_MS ?? 3000)))
await store.shutdownPromise?.().catch(() => {})
process.exit(ids.length === Number(expectedTotal) ? 0 : 1)
