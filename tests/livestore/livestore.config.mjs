// The config module of LiveStore's own CLI (`livestore sync export|import -c livestore.config.mjs`):
// the schema, and a sync-cf WebSocket backend at SYNC_URL (an `eventsync serve`), with the
// token SYNC_TOKEN. The CLI's connectivity check waits for the *next* Pong of the client's
// pinger, which pings every 10 s by default, longer than the CLI's 5 s timeout; a 1 s ping
// interval lets the check pass (against any server).
import { makeWsSync } from '@livestore/sync-cf/client'

export { schema } from './schema.mjs'

export const syncBackend = makeWsSync({ url: process.env.SYNC_URL, ping: { requestInterval: 1000 } })
export const syncPayload = { authToken: process.env.SYNC_TOKEN ?? '' }
