// A real LiveStore 0.4.0 client (adapter-node, sync-cf) against `eventsync serve`.
// usage: node client.mjs <clientId> <ws|http> <storeId> <n> <expectedTotal> <url> [token]
// Commits n todos `${clientId}-${i}` (i from START_INDEX, default 0), waits until it sees
// expectedTotal todos (60 s at most), prints their ids as one line `IDS [...]`, stays online
// LINGER_MS (default 3 s) so its last pushes go out, and exits 0 (or 1 when it did not see
// expectedTotal todos within 60 s).
// Environment:
//   READY_DIR, PEERS   a barrier: once its store is up the client writes READY_DIR/<clientId> and
//                      commits only when every client of PEERS (comma-separated) has done so, so
//                      that the clients' first pushes race (the rebase path)
//   COMMIT_GAP_MS      a pause after each commit; below 0 (the default) the n commits go in one
//                      burst, as one local push. With pauses, LiveStore 0.4.0's own client can
//                      push a batch that skips one of its events while it processes a pull
//                      (seen here: a push whose first parent is a number nobody wrote, and a
//                      batch e10, e12), and then waits forever; the reference's section 6 saw it
//                      too. A burst per client still races and rebases, without that client race.
//   STORAGE_DIR        keep the client's databases in this folder (adapter-node `fs` storage),
//                      so that a second run resumes from its cursor; in memory when unset
import { makeAdapter } from '@livestore/adapter-node'
import { createStorePromise, queryDb } from '@livestore/livestore'
import { makeHttpSync, makeWsSync } from '@livestore/sync-cf/client'

import { events, schema, todos } from './schema.mjs'

const [clientId, transport, storeId, n, expectedTotal, url, token] = process.argv.slice(2)

const backend =
  transport === 'ws' ? makeWsSync({ url }) : makeHttpSync({ url, livePull: { pollInterval: 200 } })
const storageDir = process.env.STORAGE_DIR
const adapter = makeAdapter({
  storage: storageDir ? { type: 'fs', baseDirectory: storageDir } : { type: 'in-memory' },
  clientId,
  sessionId: `${clientId}-session`,
  sync: { backend, onSyncError: 'shutdown' },
})
const store = await createStorePromise({ schema, adapter, storeId, syncPayload: { authToken: token ?? '' } })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
if (process.env.READY_DIR) {
  const { writeFileSync, existsSync } = await import('node:fs')
  writeFileSync(`${process.env.READY_DIR}/${clientId}`, '')
  const peers = (process.env.PEERS ?? clientId).split(',')
  const until = Date.now() + 60_000
  while (!peers.every((peer) => existsSync(`${process.env.READY_DIR}/${peer}`))) {
    if (Date.now() > until) throw new Error(`client ${clientId}: peers ${peers} never got ready`)
    await sleep(5)
  }
}
const gap = Number(process.env.COMMIT_GAP_MS ?? -1)
const start = Number(process.env.START_INDEX ?? 0)
for (let i = start; i < start + Number(n); i++) {
  store.commit(events.todoCreated({ id: `${clientId}-${i}`, text: `todo ${i} of ${clientId}` }))
  if (gap >= 0) await sleep(gap)
}
const deadline = Date.now() + 60_000
let ids = []
while (Date.now() < deadline) {
  ids = store.query(queryDb(todos.select('id'))).map((row) => (typeof row === 'string' ? row : row.id))
  if (ids.length >= Number(expectedTotal)) break
  await sleep(100)
}
ids.sort()
console.log(`IDS ${JSON.stringify(ids)}`)
// Seeing every todo locally does not mean this client's last pushes went out: stay online a
// while so they do (the run checks the server's log afterwards; no time is asserted).
await sleep(Number(process.env.LINGER_MS ?? 3000))
await store.shutdownPromise?.().catch(() => {})
process.exit(ids.length === Number(expectedTotal) ? 0 : 1)
