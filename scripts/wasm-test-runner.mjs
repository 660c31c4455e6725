// Cargo's runner for the wasm32 tests: wasm-bindgen-test-runner, with Chromium sent
// through a loopback proxy that opens one connection per request.
//
// Why: the runner serves the test page with tiny_http, whose thread pool can queue a new
// connection behind threads parked on the browser's idle keep-alive connections (a lost
// condvar wake-up when two connections arrive together). The page then waits forever on a
// module that is never served; on this 2-core machine that hung about half the runs,
// before any test ran. Through the proxy every upstream connection carries one request
// and closes, so no tiny_http thread is ever parked on an idle one.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding'];

function withoutHopByHop(headers) {
  const out = { ...headers };
  for (const name of HOP_BY_HOP) delete out[name];
  return out;
}

const proxy = http.createServer((req, res) => {
  // A proxied request names its target in full: http://127.0.0.1:PORT/path.
  const target = new URL(req.url);
  // Chromium's own update and clock checks come this way too; they stay here.
  if (target.hostname !== '127.0.0.1') {
    res.writeHead(403).end();
    return;
  }
  const upstream = http.request(
    {
      host: target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      method: req.method,
      headers: { ...withoutHopByHop(req.headers), connection: 'close' },
      agent: false,
    },
    (answer) => {
      res.writeHead(answer.statusCode, withoutHopByHop(answer.headers));
      answer.pipe(res);
    },
  );
  upstream.on('error', (err) => {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`proxy: ${err.message}`);
  });
  req.pipe(upstream);
});
await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));

const capabilities = JSON.parse(readFileSync('webdriver.json', 'utf8'));
capabilities['goog:chromeOptions'].args.push(
  `--proxy-server=http://127.0.0.1:${proxy.address().port}`,
  // Chromium never proxies loopback unless told to.
  '--proxy-bypass-list=<-loopback>',
);
const dir = mkdtempSync(join(tmpdir(), 'wasm-test-'));
const webdriverJson = join(dir, 'webdriver.json');
writeFileSync(webdriverJson, JSON.stringify(capabilities));

const runner = spawn('wasm-bindgen-test-runner', process.argv.slice(2), {
  stdio: 'inherit',
  env: { ...process.env, WASM_BINDGEN_TEST_WEBDRIVER_JSON: webdriverJson },
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => runner.kill(signal));
const code = await new Promise((resolve) =>
  runner.on('exit', (status, signal) => resolve(status ?? (signal ? 1 : 0))),
);
proxy.close();
proxy.closeAllConnections();
rmSync(dir, { recursive: true, force: true });
process.exit(code);
