// Runs before `npm pack` builds dist/: a module renamed or deleted in src/ would otherwise stay in dist/
// from an earlier build and ship in the tarball (package.json "files" takes dist/ whole).
import { rmSync } from 'node:fs';

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
