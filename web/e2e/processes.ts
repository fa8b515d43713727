import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { dirname, join } from 'node:path'

// More `wework api` processes on the database of the server `scripts/console-e2e` started, and
// a balancer in front of them: what a deployment with several API processes looks like to a
// browser, so a test can kill the process serving a page.

const bin = process.env.WEWORK_BIN
const config = process.env.WEWORK_CONFIG_FILE

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}

export interface ApiProcess {
  port: number
  child: ChildProcess
  /** Kills the process at once (SIGKILL: no graceful shutdown) and waits for it to go. */
  kill(): Promise<void>
}

/** Starts `wework api` on a port of its own, sharing the e2e server's configuration. */
export async function startApi(): Promise<ApiProcess> {
  if (!bin || !config) throw new Error('WEWORK_BIN and WEWORK_CONFIG_FILE come from scripts/console-e2e')
  const port = await freePort()
  const own = join(dirname(config), `api-${port}.toml`)
  const text = readFileSync(config, 'utf8')
    .replace(/^port = \d+$/m, `port = ${port}`)
    .replace(/^metrics_spool_dir = "(.*)"$/m, (_, dir: string) => `metrics_spool_dir = "${dir}-${port}"`)
  writeFileSync(own, text)
  const child = spawn(bin, ['api'], { env: { ...process.env, WEWORK_CONFIG: own }, stdio: 'ignore' })
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`wework api exited with ${child.exitCode}`)
    if (Date.now() > deadline) throw new Error('wework api did not start')
    await new Promise((r) => setTimeout(r, 200))
  }
  return {
    port,
    child,
    kill: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGKILL')
      }),
  }
}

export interface Balancer {
  url: string
  close(): Promise<void>
}

/**
 * A TCP balancer that sends each new connection to the first backend that accepts it, as a
 * load balancer whose health check took a dead process out: connections to a killed process
 * drop, and the browser's reconnects land on the next one.
 */
export async function balancer(ports: number[]): Promise<Balancer> {
  const sockets = new Set<net.Socket>()
  // The client's bytes wait in its socket (nothing reads it) until a backend is piped to it.
  const connect = (client: net.Socket, index: number) => {
    if (index >= ports.length) return client.destroy()
    let connected = false
    const upstream = net.connect(ports[index], '127.0.0.1')
    upstream.on('error', () => {
      if (connected) client.destroy()
      else connect(client, index + 1)
    })
    upstream.once('connect', () => {
      connected = true
      sockets.add(upstream)
      client.pipe(upstream)
      upstream.pipe(client)
      upstream.once('close', () => client.destroy())
      client.once('close', () => upstream.destroy())
    })
  }
  const server = net.createServer((client) => {
    sockets.add(client)
    client.on('error', () => client.destroy())
    connect(client, 0)
  })
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
