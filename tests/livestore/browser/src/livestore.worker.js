// LiveStore's leader worker: it holds the eventlog and state in OPFS and syncs with the server.
// The sync URL comes from the page's syncPayload (`syncUrl`), so that one build serves any
// `eventsync serve` port; eventsync's auth reads `authToken` from the same payload.
import { makeWorker } from '@livestore/adapter-web/worker'
import { makeHttpSync, makeWsSync } from '@livestore/sync-cf/client'

import { schema } from '../../schema.mjs'

const backend = (args) => {
  const { syncUrl, transport } = args.payload ?? {}
  if (typeof syncUrl !== 'string') throw new Error('the syncPayload has no syncUrl')
  const make =
    transport === 'http'
      ? makeHttpSync({ url: syncUrl, livePull: { pollInterval: 200 } })
      : makeWsSync({ url: syncUrl })
  return make(args)
}

makeWorker({ schema, sync: { backend, onSyncError: 'shutdown' } })
