// The LiveStore side of eventsync's todo app, as far as these tests use it: the table `todos`
// and the synced event v1.TodoCreated {id, text} (eventsync's todo app defines the same event),
// so that LiveStore clients and eventsync clients read each other's events.
import { Events, makeSchema, Schema, State } from '@livestore/livestore'

export const todos = State.SQLite.table({
  name: 'todos',
  columns: { id: State.SQLite.text({ primaryKey: true }), text: State.SQLite.text({ default: '' }) },
})

export const events = {
  todoCreated: Events.synced({
    name: 'v1.TodoCreated',
    schema: Schema.Struct({ id: Schema.String, text: Schema.String }),
  }),
}

const materializers = State.SQLite.materializers(events, {
  'v1.TodoCreated': ({ id, text }) => todos.insert({ id, text }),
})

export const schema = makeSchema({ events, state: State.SQLite.makeState({ tables: { todos }, materializers }) })
