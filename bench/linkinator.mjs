// linkinator's crawl as `linkinator URL --recurse --skip RE --concurrency N --format json` runs it
// (the same check() with the same options), but the process ends when check() resolves.
// The CLI leaves the bodies of non-HTML responses unread; those connections stay open until the
// server drops them (nginx and aiohttp: 75 s of keep-alive), and the CLI cannot exit before.
// Usage: node bench/linkinator.mjs URL SKIP_RE CONCURRENCY; prints {"links": [...]} like the CLI.
const linkinator = new URL("node/node_modules/linkinator/build/src/index.js", import.meta.url);
const { check } = await import(linkinator.href);
const [path, skip, concurrency] = process.argv.slice(2);
const result = await check({ path, recurse: true, linksToSkip: [skip], concurrency: Number(concurrency) });
const links = result.links.map(({ url, state, status, parent }) => ({ url, state, status, parent }));
process.stdout.write(JSON.stringify({ links }), () => process.exit(0)); // a pipe is written asynchronously
