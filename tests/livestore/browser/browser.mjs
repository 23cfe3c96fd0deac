// Drives the LiveStore web page (dist/, built by `vite build`) in headless Chromium with
// playwright-core, against `eventsync serve`.
// usage: node browser.mjs <ws|http> <syncUrl> <token> <storeId> <expectedTotal> <screenshot.png>
// Serves dist/ on 127.0.0.1 (a free port) with the cross-origin isolation headers, opens the
// page, types a todo and clicks Add, prints `COMMITTED <id>` once the page lists it, waits
// (180 s at most) until the page lists expectedTotal todos, takes a screenshot, and prints
// `IDS [...]` (sorted) and `SCREENSHOT <path>`. Exits 0 when the page listed expectedTotal todos.
// The page's console and errors go to stderr. CHROMIUM overrides /usr/bin/chromium.
import { createReadStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { extname, join, normalize, resolve } from 'node:path'

import { chromium } from 'playwright-core'

const [transport, syncUrl, token, storeId, expectedTotal, screenshot] = process.argv.slice(2)
if (!screenshot) {
  console.error('usage: node browser.mjs <ws|http> <syncUrl> <token> <storeId> <expectedTotal> <screenshot.png>')
  process.exit(2)
}
const expected = Number(expectedTotal)
const dist = resolve(import.meta.dirname, 'dist')
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.css': 'text/css; charset=utf-8',
}

// A static server for dist/. COOP/COEP make the page cross-origin isolated, as LiveStore's
// web adapter docs advise (SharedArrayBuffer); the sync server is another origin, reached by
// WebSocket or by fetch with CORS.
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname))
  let file = join(dist, path === '/' ? 'index.html' : path)
  if (!file.startsWith(dist)) {
    res.writeHead(403).end()
    return
  }
  try {
    if ((await stat(file)).isDirectory()) file = join(file, 'index.html')
    await stat(file)
  } catch {
    res.writeHead(404).end(`no such file: ${path}`)
    return
  }
  res.writeHead(200, {
    'content-type': types[extname(file)] ?? 'application/octet-stream',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-embedder-policy': 'require-corp',
    'cache-control': 'no-store',
  })
  createReadStream(file).pipe(res)
})
await new Promise((ok) => server.listen(0, '127.0.0.1', ok))
const pageOrigin = `http://127.0.0.1:${server.address().port}`

// Chromium as root on this machine: no sandbox, no GPU, and none of its background connections
// (the network is closed: they would be refused), in a fresh profile.
const profile = await mkdtemp(join(tmpdir(), 'eventsync-chromium-'))
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  viewport: { width: 900, height: 600 },
})
let exitCode = 1
try {
  const page = browser.pages()[0] ?? (await browser.newPage())
  page.on('console', (msg) => console.error(`page console.${msg.type()}: ${msg.text()}`))
  page.on('pageerror', (error) => console.error(`page error: ${error.stack ?? error}`))
  const query = new URLSearchParams({ sync: syncUrl, transport, token, store: storeId, client: 'browser' })
  await page.goto(`${pageOrigin}/?${query}`)
  await page.waitForSelector('body[data-ready]', { timeout: 180_000 })
  const ready = await page.getAttribute('body', 'data-ready')
  if (ready !== 'true') throw new Error(`the page did not boot: ${await page.textContent('#status')}`)
  const isolated = await page.evaluate(() => globalThis.crossOriginIsolated)
  console.error(`page: ${await page.textContent('#status')} (crossOriginIsolated=${isolated})`)
  if (isolated !== true) throw new Error('the page is not cross-origin isolated (COOP/COEP headers)')

  await page.fill('#text', 'written in headless Chromium')
  await page.click('#submit')
  await page.waitForSelector('li[data-id="browser-0"]', { timeout: 30_000 })
  console.log('COMMITTED browser-0')

  const ids = async () => (await page.$$eval('#todos li', (items) => items.map((li) => li.dataset.id))).sort()
  let seen = []
  const deadline = Date.now() + 180_000
  while (Date.now() < deadline) {
    seen = await ids()
    if (seen.length >= expected) break
    await page.waitForTimeout(100)
  }
  await page.screenshot({ path: screenshot, fullPage: true })
  console.log(`IDS ${JSON.stringify(seen)}`)
  console.log(`SCREENSHOT ${screenshot}`)
  exitCode = seen.length === expected ? 0 : 1
} catch (error) {
  console.error(`browser: ${error.stack ?? error}`)
} finally {
  await browser.close().catch(() => {})
  server.close()
  await rm(profile, { recursive: true, force: true })
}
process.exit(exitCode)
