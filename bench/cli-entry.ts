// The CLI from the TypeScript sources (bench/quality.mjs --runner tsx): no build needed.
import { main } from '../main/cli/index.ts';
process.exitCode = await main(process.argv.slice(2));
