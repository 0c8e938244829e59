import { afterAll, describe, expect, it } from 'vitest';
import { cliEnv, removeCliDirs, hasStack, lines, weir } from './cli.js';

const env = cliEnv('clitest-usage-');
afterAll(removeCliDirs);

describe('weir: help and wrong usage (real CLI)', () => {
  it('prints help with examples for every command', async () => {
    const commands = [[], ['produce'], ['schemas'], ['schemas', 'register'], ['schemas', 'check'], ['schemas', 'list'], ['deploy'], ['replay'], ['status'], ['stop']];
    const results = await Promise.all(commands.map((c) => weir([...c, '--help'], env)));
    for (const [i, r] of results.entries()) {
      const name = ['weir', ...commands[i]!].join(' ');
      expect(r.code, `${name} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`Usage: ${name}`);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toMatch(/\$ weir /);
    }
    // what the issue asks the help to say
    expect(results[1]!.stdout).toMatch(/routing\s+→ agent-events \+ conversation-events/);
    expect(results[6]!.stdout).toContain('--instances');
    expect(results[7]!.stdout).toMatch(/--to-offset[\s\S]*--to-timestamp[\s\S]*--to-earliest[\s\S]*--dry-run/);
    expect(results[0]!.stdout).not.toMatch(/worker \[options\]/); // the worker and sink commands are internal
    expect(results[0]!.stdout).not.toMatch(/sink \[options\]/);
  });

  it('refuses wrong arguments with one line on stderr, exit code 2, no stack', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['deploy', 'nope'], /unknown topology 'nope'; the topologies are routing, trades, payments/],
      [['status', 'nope'], /unknown topology 'nope'/],
      [['replay', 'trades', '--to-offset', '0:x'], /--to-offset: '0:x' is not partition:offset/],
      [['replay', 'trades', '--to-offset', 'bogus'], /--to-offset: 'bogus' is not partition:offset/],
      [['replay', 'routing', '--to-offset', '0:5'], /reads agent-events and conversation-events: give --to-offset as topic:partition:offset/],
      [['replay', 'trades'], /give exactly one of --to-offset, --to-timestamp, --to-earliest/],
      [['replay', 'trades', '--to-timestamp', 'yesterday'], /--to-timestamp takes epoch milliseconds or an ISO-8601 date-time/],
      [['produce', '--generate', 'trades', '--count'], /option '--count <n>' argument missing/],
      [['produce', '--generate', 'trades', '--count', '0'], /--count takes a positive whole number, not '0'/],
      [['produce', '--generate', 'bitcoin'], /unknown scenario 'bitcoin'/],
      [['produce', '--generate', 'trades', '--malformed', '1.5'], /--malformed takes a ratio/],
      [['produce', 'nope', '--file', 'x.ndjson'], /topic 'nope' is not in the catalog/],
      [['produce', 'payments', '--generate', 'trades'], /the trades scenario produces to trades, not 'payments'/],
      [['deploy', 'trades', '--instances', 'two'], /--instances takes a positive whole number, not 'two'/],
      [['deploy'], /missing required argument 'topology'/],
      [['sink', 'trades', '--kind', 'mysql'], /--kind takes postgres or redis, not 'mysql'/],
      [['sink', 'payments', '--kind', 'redis'], /the payments topology writes nothing to redis/],
      [['sink', 'trades'], /required option '--kind <kind>' not specified/],
      [['deplyo', 'trades'], /unknown command 'deplyo'/],
      [['schemas', 'check', '--schema', 'trades'], /--schema takes topic=path\/to\/schema.avsc/],
    ];
    const results = await Promise.all(cases.map(([args]) => weir(args, env)));
    for (const [i, r] of results.entries()) {
      const [args, message] = cases[i]!;
      const what = `weir ${args.join(' ')}: ${r.stderr}`;
      expect(r.code, what).toBe(2);
      expect(lines(r.stderr), what).toHaveLength(1);
      expect(r.stderr, what).toMatch(message);
      expect(r.stderr, what).toMatch(/^weir: /);
      expect(hasStack(r.stderr), what).toBe(false);
    }
  });

  it('says in one line that the broker cannot be reached, within the connect timeout', async () => {
    const unreachable = { ...env, KAFKA_BROKERS: '127.0.0.1:1', WEIR_CONNECT_TIMEOUT_MS: '3000' };
    const results = await Promise.all([
      weir(['status', 'trades'], unreachable, { timeoutMs: 30_000 }),
      weir(['deploy', 'trades'], unreachable, { timeoutMs: 30_000 }),
      weir(['produce', '--generate', 'trades', '--count', '10'], unreachable, { timeoutMs: 30_000 }),
      weir(['replay', 'trades', '--to-earliest', '--dry-run'], unreachable, { timeoutMs: 30_000 }),
    ]);
    for (const r of results) {
      expect(r.code, r.stderr).toBe(1);
      expect(lines(r.stderr), r.stderr).toEqual([expect.stringMatching(/^weir: cannot reach Kafka at 127\.0\.0\.1:1 after \d+ s; is the broker running and the address right\?$/)]);
      expect(r.ms).toBeLessThan(15_000);
    }
  });

  it('says in one line that the registry cannot be reached; WEIR_DEBUG=1 adds the stack', async () => {
    const down = { ...env, SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1' };
    const [plain, debug] = await Promise.all([weir(['schemas', 'check'], down), weir(['schemas', 'check'], { ...down, WEIR_DEBUG: '1' })]);
    expect(plain.code).toBe(1);
    expect(lines(plain.stderr)).toEqual([expect.stringMatching(/^weir: cannot reach the schema registry at http:\/\/127\.0\.0\.1:1\/apis\/ccompat\/v7 \(.*ECONNREFUSED.*\); is it running/)]);
    expect(debug.code).toBe(1);
    expect(hasStack(debug.stderr)).toBe(true);
  });

  it('refuses a bad setting by name', async () => {
    const r = await weir(['status'], { ...env, WEIR_PARTITIONS: 'many' });
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toEqual([expect.stringMatching(/^weir: setting WEIR_PARTITIONS="many" is not valid/)]);
  });
});
