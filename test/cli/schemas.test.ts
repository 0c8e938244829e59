import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliEnv, removeCliDirs, hasStack, lines, ROOT, weir } from './cli.js';

const env = cliEnv('clitest-schemas-');
afterAll(removeCliDirs);

interface Listed {
  subject: string;
  versions: Array<{ version: number; id: number }>;
}

describe('weir schemas (real registry)', () => {
  it('registers the catalog, checks it as unchanged and lists versions and ids', async () => {
    const register = await weir(['schemas', 'register'], env);
    expect(register.code, register.stderr).toBe(0);
    expect(register.stdout).toMatch(/^trades-value\s+version \d+\s+id \d+\s+(registered|unchanged)$/m);
    expect(register.stdout).toMatch(/\d+ registered, \d+ already registered/);

    const [check, list] = await Promise.all([weir(['schemas', 'check', '--json'], env), weir(['schemas', 'list', '--json'], env)]);
    expect(check.code, check.stderr).toBe(0);
    const checks = JSON.parse(check.stdout) as Array<{ subject: string; status: string; id?: number }>;
    expect(checks.map((c) => c.subject)).toContain('positions-value');
    expect(checks.every((c) => c.status === 'registered')).toBe(true);

    expect(list.code, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as Listed[];
    expect(listed).toHaveLength(9);
    for (const s of listed) {
      expect(s.versions.length).toBeGreaterThan(0);
      // the id check reports is one of the subject's versions
      expect(s.versions.map((v) => v.id)).toContain(checks.find((c) => c.subject === s.subject)!.id);
    }
  });

  it('refuses an incompatible schema with one sentence naming subject and field, and registers nothing', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weir-schema-'));
    const schema = JSON.parse(readFileSync(path.join(ROOT, 'schemas/avro/trade-event.avsc'), 'utf8')) as { fields: object[] };
    schema.fields.push({ name: 'venue', type: 'string' }); // no default: old trades cannot be read with it
    const file = path.join(dir, 'trade-event-v2.avsc');
    writeFileSync(file, JSON.stringify(schema));
    const before = JSON.parse((await weir(['schemas', 'list', '--json', '--topology', 'trades'], env)).stdout) as Listed[];

    const [check, register] = await Promise.all([
      weir(['schemas', 'check', '--topology', 'trades', '--schema', `trades=${file}`], env),
      weir(['schemas', 'register', '--schema', `trades=${file}`], env),
    ]);
    for (const r of [check, register]) {
      expect(r.code, r.stderr).toBe(1);
      expect(lines(r.stderr)).toEqual([
        expect.stringMatching(/^weir: subject trades-value: the new schema is not BACKWARD compatible with version \d+: field 'venue' has no default/),
      ]);
      expect(hasStack(r.stderr)).toBe(false);
    }
    expect(check.stdout).toMatch(/^trades-value\s+INCOMPATIBLE \(BACKWARD\)$/m);

    const after = JSON.parse((await weir(['schemas', 'list', '--json', '--topology', 'trades'], env)).stdout) as Listed[];
    expect(after).toEqual(before);

    // A compatible change (a field with a default) passes the gate in a dry run.
    schema.fields.pop();
    schema.fields.push({ name: 'venue', type: ['null', 'string'], default: null });
    writeFileSync(file, JSON.stringify(schema));
    const ok = await weir(['schemas', 'check', '--topology', 'trades', '--schema', `trades=${file}`], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^trades-value\s+compatible \(BACKWARD with version \d+\): would be a new version$/m);
    rmSync(dir, { recursive: true, force: true });
  });
});
