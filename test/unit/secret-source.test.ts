import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { openSecretSource, type SecretSource } from '../../src/config/secret-source.ts';

/**
 * A Secret volume as the kubelet writes it: each key is a symlink through `..data` to a timestamped
 * directory, and an update writes a new directory and renames a fresh `..data` symlink over the old one.
 */
class KubeletSecretVolume {
  readonly dir = mkdtempSync(join(tmpdir(), 'warden-secret-volume-'));
  private generation = 0;
  private readonly key: string;

  constructor(key: string, value: string) {
    this.key = key;
    this.write(value);
    symlinkSync(join('..data', key), join(this.dir, key));
  }

  write(value: string): void {
    const previous = this.generation > 0 ? `..gen_${this.generation}` : undefined;
    this.generation += 1;
    const current = `..gen_${this.generation}`;
    mkdirSync(join(this.dir, current));
    writeFileSync(join(this.dir, current, this.key), value);
    symlinkSync(current, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (previous) rmSync(join(this.dir, previous), { recursive: true });
  }

  get path(): string {
    return join(this.dir, this.key);
  }
}

describe('a file secret', () => {
  const open: SecretSource[] = [];
  afterEach(() => open.splice(0).forEach((source) => source.close()));

  it('follows a Kubernetes Secret update (an atomic ..data symlink swap) without a restart', async () => {
    const volume = new KubeletSecretVolume('upstream-api-key', 'first-key\n');
    const source = openSecretSource({ kind: 'file', path: volume.path });
    open.push(source);
    expect(source.current()).toEqual({ ok: true, value: 'first-key' });

    volume.write('second-key\n');
    const deadline = Date.now() + 6000;
    while (Date.now() < deadline && (source.current() as { value?: string }).value !== 'second-key') await sleep(100);
    expect(source.current()).toEqual({ ok: true, value: 'second-key' });
    rmSync(volume.dir, { recursive: true });
  });
});
