// Runs before `npm test`, `npm start`, `npm run demo`, `npm run demo:client` and `npm pack`, so that a
// fresh clone needs no separate install step, and so that an old Node.js gets this one line instead of
// a stack trace (the check comes first, in plain JavaScript any old Node.js can run).
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(`mcp-warden needs Node.js >= 22.19 (this is ${process.version}).`);
  process.exit(1);
}
if (!existsSync(new URL('../node_modules/.package-lock.json', import.meta.url))) {
  execSync('npm ci --no-audit --no-fund', { stdio: 'inherit' });
}
