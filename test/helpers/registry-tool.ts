// The registry client as a small command, for tests that run it inside a sandbox's namespace (where the
// test's registry is reachable). Images are exchanged in skopeo's `dir:` layout (manifest.json, blobs by hex
// digest, version), so skopeo checks what this client did and the other way round.
//   registry-tool pull REF DIR
//   registry-tool push DIR REF [--chunk N] [--monolithic] [--mount-from REPO]
//   registry-tool login DOMAIN
// Credentials: REG_USER/REG_PASS; --insecure-registry values: REG_INSECURE (comma separated);
// name resolution: REG_HOSTS/REG_RESOLV (hosts file and resolv.conf).
import fs from 'node:fs';
import path from 'node:path';
import { RegistryClient } from '../../src/images/registry/client.ts';
import { makeLookup } from '../../src/images/registry/resolve.ts';
import { parseRepoRef } from '../../src/images/registry/refname.ts';
import { pullError } from '../../src/images/registry/errors.ts';
import { familiarName, familiarString } from '../../src/images/registry/refname.ts';

const [cmd, ...args] = process.argv.slice(2);
const opts = {
  insecure: (process.env.REG_INSECURE ?? '').split(',').filter(Boolean),
  certsDir: process.env.REG_CERTS ?? '/nonexistent',
  lookup: makeLookup(process.env.REG_HOSTS ?? '/etc/hosts', process.env.REG_RESOLV ?? '/etc/resolv.conf'),
};
const creds = process.env.REG_IDTOKEN ? { identitytoken: process.env.REG_IDTOKEN }
  : process.env.REG_USER ? { username: process.env.REG_USER, password: process.env.REG_PASS } : {};
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

async function main(): Promise<void> {
  if (cmd === 'login') {
    const c = await RegistryClient.open(args[0]!, opts, creds);
    const token = await c.login();
    console.log('Login Succeeded');
    if (token) console.log(`identity token: ${token}`);
    c.close();
    return;
  }
  if (cmd === 'pull') {
    const ref = parseRepoRef(args[0]!);
    const dir = args[1]!;
    const c = await RegistryClient.open(ref.domain, opts, creds);
    const repo = c.repo(ref.path, ['pull']);
    let img;
    try {
      img = await repo.resolve(ref.digest ?? ref.tag ?? 'latest');
    } catch (e) {
      throw pullError(e, familiarName(ref), familiarString({ ...ref, tag: ref.digest ? undefined : ref.tag ?? 'latest' }));
    }
    fs.mkdirSync(dir, { recursive: true });
    for (const d of [img.manifest.config, ...img.manifest.layers]) await repo.downloadBlob(d, path.join(dir, d.digest.slice(7)));
    fs.writeFileSync(path.join(dir, 'manifest.json'), img.manifestBytes);
    fs.writeFileSync(path.join(dir, 'version'), 'Directory Transport Version: 1.1\n');
    console.log(img.digest);
    c.close();
    return;
  }
  if (cmd === 'push') {
    const dir = args[0]!;
    const ref = parseRepoRef(args[1]!);
    const c = await RegistryClient.open(ref.domain, opts, creds);
    const repo = c.repo(ref.path, ['pull', 'push']);
    const bytes = fs.readFileSync(path.join(dir, 'manifest.json'));
    const m = JSON.parse(bytes.toString()) as { mediaType?: string; config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
    const from = flag('--mount-from');
    const chunk = flag('--chunk');
    for (const d of [...m.layers, m.config]) {
      if (await repo.blobExists(d.digest) !== undefined) { console.log(`${d.digest}: exists`); continue; }
      if (from && await repo.mountBlob(d.digest, from)) { console.log(`${d.digest}: mounted`); continue; }
      await repo.uploadBlob(d, () => fs.createReadStream(path.join(dir, d.digest.slice(7))), { chunkSize: chunk ? Number(chunk) : undefined, monolithic: args.includes('--monolithic') });
      console.log(`${d.digest}: pushed`);
    }
    console.log(await repo.putManifest(ref.tag ?? 'latest', bytes, m.mediaType ?? 'application/vnd.oci.image.manifest.v1+json'));
    c.close();
    return;
  }
  throw new Error(`unknown command ${cmd}`);
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
