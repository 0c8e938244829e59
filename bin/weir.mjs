#!/usr/bin/env node
// The `weir` command: registers tsx so Node runs the TypeScript sources directly, then hands over to cli/weir.ts.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../cli/weir.ts');
await run(process.argv.slice(2));
