// Builds the page and its two LiveStore workers as ES modules. The schema is ../schema.mjs, shared
// with the node clients: `dedupe` makes its `@livestore/livestore` import resolve to this folder's
// copy. wa-sqlite stays out of the dependency optimizer (LiveStore's adapter-web README). The
// bundles are large (LiveStore, Effect, wa-sqlite) and that is fine for a test page.
import { defineConfig } from 'vite'

export default defineConfig({
  build: { target: 'es2022', chunkSizeWarningLimit: 2000 },
  resolve: { dedupe: ['@livestore/livestore'] },
  optimizeDeps: { exclude: ['@livestore/wa-sqlite'] },
  worker: { format: 'es' },
})
