// A minimal LiveStore web page: the persisted web adapter (OPFS, a SharedWorker and a leader
// worker), the todo app's schema (../../schema.mjs, the one the node clients use), a form that
// commits `v1.TodoCreated`, and the todos as a list.
// Query parameters: sync (the `eventsync serve` URL), transport (ws|http), token, store, client.
import { makePersistedAdapter } from '@livestore/adapter-web'
import LiveStoreSharedWorker from '@livestore/adapter-web/shared-worker?sharedworker'
import { createStorePromise, queryDb } from '@livestore/livestore'

import { events, schema, todos } from '../../schema.mjs'
import LiveStoreWorker from './livestore.worker.js?worker'

const params = new URLSearchParams(location.search)
const clientId = params.get('client') ?? 'browser'
const status = document.getElementById('status')
const list = document.getElementById('todos')

const render = (rows) => {
  list.replaceChildren(
    ...rows.map(({ id, text }) => {
      const item = document.createElement('li')
      item.dataset.id = id
      item.textContent = `${text} (${id})`
      return item
    }),
  )
}

try {
  const adapter = makePersistedAdapter({
    storage: { type: 'opfs' },
    worker: LiveStoreWorker,
    sharedWorker: LiveStoreSharedWorker,
    clientId,
    sessionId: `${clientId}-session`,
  })
  const store = await createStorePromise({
    schema,
    adapter,
    storeId: params.get('store') ?? 's1',
    syncPayload: {
      authToken: params.get('token') ?? '',
      syncUrl: params.get('sync'),
      transport: params.get('transport') ?? 'ws',
    },
  })
  const allTodos = queryDb(todos.select('id', 'text').orderBy('id', 'asc'))
  store.subscribe(allTodos, render)
  render(store.query(allTodos))
  let counter = 0
  document.getElementById('add').addEventListener('submit', (event) => {
    event.preventDefault()
    const input = document.getElementById('text')
    const id = `${clientId}-${counter++}`
    store.commit(events.todoCreated({ id, text: input.value }))
    input.value = ''
  })
  document.getElementById('submit').disabled = false
  status.textContent = `store ${store.storeId} ready, client ${clientId}`
  document.body.dataset.ready = 'true'
} catch (error) {
  status.textContent = `LiveStore failed to boot: ${error?.stack ?? error}`
  document.body.dataset.ready = 'error'
  console.error(error)
}
