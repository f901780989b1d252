// Issue 2's scenarios end to end: a loom daemon in a sandbox "host" namespace, driven by bin/loom and by
// the unmodified docker CLI; real packets between containers, to the host, and out to the sandbox's
// outside world (never to any address outside the namespaces this test makes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxTar, createSandbox, eventually, LOOM, requireRoot, runCmd, type Sandbox } from '../helpers/sandbox.ts';
import { fails, ok } from '../helpers/assert.ts';

let sb: Sandbox;
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces, runc)' : false;

/** A TCP server in the outside world that answers with the peer address it sees (proves masquerade). */
const PEER_ECHO = `require('net').createServer(s=>{s.end('HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\npeer='+s.remoteAddress.replace('::ffff:','')+'\\n')}).listen(9000,'198.51.100.2')`;

async function hostLinks(): Promise<string[]> {
  const out = await ok(sb.hostExec(['ip', '-o', 'link', 'show']));
  // without links network rm / disconnect retired (lmdel…), deleted in the background
  return out.split('\n').map((l) => l.split(': ')[1]!.split('@')[0]!).filter((l) => !l.startsWith('lmdel')).sort();
}

async function netnsNames(): Promise<string[]> {
  const r = await sb.hostExec(['ip', 'netns', 'list']);
  return r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(sb.netnsPrefix));
}

before(async () => {
  if (skip) return;
  sb = await createSandbox();
  await sb.startDaemon();
  await sb.image('box');
}, { timeout: 120_000 });

after(async () => {
  if (sb) await sb.cleanup();
});

test('bridge: two containers reach each other, the host and the outside world (masqueraded)', { skip }, async () => {
  const id1 = await ok(sb.loom('run', '-d', '--name', 'c1', 'box', 'sleep', '600'), 'run c1');
  assert.match(id1, /^[0-9a-f]{64}$/);
  await ok(sb.loom('run', '-d', '--name', 'c2', 'box', 'sleep', '600'), 'run c2');
  const ip1 = await ok(sb.loom('inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'c1'));
  const ip2 = await ok(sb.loom('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', 'c2'));
  assert.equal(ip1, '172.17.0.2');
  assert.equal(ip2, '172.17.0.3');
  await ok(sb.loom('exec', 'c2', 'ping', '-c1', '-W2', ip1), 'c2 pings c1');
  await ok(sb.loom('exec', 'c1', 'ping', '-c1', '-W2', '172.17.0.1'), 'c1 pings its gateway');
  await ok(sb.hostExec(['busybox', 'ping', '-c1', '-W2', ip2]), 'host pings c2');
  // egress: the outside world sees the host's address, not the container's
  sb.spawnExt(['node', '-e', PEER_ECHO]);
  await new Promise((r) => setTimeout(r, 300));
  const body = await ok(sb.loom('exec', 'c1', 'wget', '-qO-', 'http://198.51.100.2:9000/'), 'egress');
  assert.equal(body, 'peer=198.51.100.1');
});

test('container namespace: eth0 with 02:42 MAC, default route, visible to ip netns', { skip }, async () => {
  const ns = `${sb.netnsPrefix}c1`;
  assert.ok((await netnsNames()).includes(ns));
  const addr = await ok(sb.hostExec(['ip', 'netns', 'exec', ns, 'ip', '-o', '-4', 'addr', 'show', 'eth0']));
  assert.match(addr, /inet 172\.17\.0\.2\/16/);
  const link = await ok(sb.hostExec(['ip', 'netns', 'exec', ns, 'ip', '-o', 'link', 'show', 'eth0']));
  assert.match(link, /02:42:ac:11:00:02/);
  const route = await ok(sb.hostExec(['ip', 'netns', 'exec', ns, 'ip', 'route']));
  assert.match(route, /default via 172\.17\.0\.1 dev eth0/);
  // host end: veth + 7 hex on the bridge
  const veths = (await hostLinks()).filter((l) => /^veth[0-9a-f]{7}$/.test(l));
  assert.equal(veths.length, 2);
  const br = await ok(sb.hostExec(['ip', '-o', 'link', 'show', 'master', 'loom0']));
  assert.equal(br.split('\n').length, 2);
  // the etc files
  assert.match(await ok(sb.loom('exec', 'c1', 'cat', '/etc/hosts')), /172\.17\.0\.2\t[0-9a-f]{12}/);
  assert.equal(await ok(sb.loom('exec', 'c1', 'hostname')), id12(await ok(sb.loom('inspect', '-f', '{{.Id}}', 'c1'))));
  assert.doesNotMatch(await ok(sb.loom('exec', 'c1', 'cat', '/etc/resolv.conf')), /nameserver 127\./);
});

const id12 = (s: string) => s.slice(0, 12);

test('inspect is Docker-shaped', { skip }, async () => {
  const [j] = JSON.parse(await ok(sb.loom('inspect', 'c1')));
  assert.equal(j.Name, '/c1');
  assert.equal(j.State.Status, 'running');
  assert.equal(j.State.Running, true);
  assert.ok(j.State.Pid > 0);
  assert.equal(j.HostConfig.NetworkMode, 'bridge');
  assert.equal(j.NetworkSettings.Gateway, '172.17.0.1');
  assert.equal(j.NetworkSettings.MacAddress, '02:42:ac:11:00:02');
  const n = j.NetworkSettings.Networks.bridge;
  assert.equal(n.IPAddress, '172.17.0.2');
  assert.equal(n.IPPrefixLen, 16);
  assert.equal(n.Gateway, '172.17.0.1');
  assert.match(n.EndpointID, /^[0-9a-f]{64}$/);
  assert.match(n.NetworkID, /^[0-9a-f]{64}$/);
  assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Pid}}', 'c1')), String(j.State.Pid));
  assert.equal(await ok(sb.loom('inspect', '-f', '{{(index .NetworkSettings.Networks "bridge").MacAddress}}', 'c1')), '02:42:ac:11:00:02');
  const [net] = JSON.parse(await ok(sb.loom('network', 'inspect', 'bridge')));
  assert.equal(net.Name, 'bridge');
  assert.deepEqual(net.IPAM.Config, [{ Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' }]);
  assert.equal(net.Containers[j.Id].IPv4Address, '172.17.0.2/16');
  assert.equal(net.Containers[j.Id].Name, 'c1');
});

test('none, host and container network modes', { skip }, async () => {
  const none = await ok(sb.loom('run', '--rm', '--network', 'none', 'box', 'ip', '-o', 'link'));
  assert.deepEqual(none.split('\n').map((l) => l.split(': ')[1]), ['lo']);
  assert.match(none, /LOOPBACK,UP/);
  const host = await ok(sb.loom('run', '--rm', '--network', 'host', 'box', 'ip', '-o', '-4', 'addr'));
  assert.match(host, /ext0.*198\.51\.100\.1\/24/);
  await ok(sb.loom('run', '-d', '--name', 'web', 'box', 'httpd', '-f', '-p', '8080', '-h', '/www'));
  const page = await ok(sb.loom('run', '--rm', '--network', 'container:web', 'box', 'wget', '-qO-', 'http://127.0.0.1:8080/'));
  assert.equal(page, 'hello from loom');
  // joining a container that is not running is refused
  await ok(sb.loom('create', '--name', 'idle', 'box', 'true'));
  const r = await sb.loom('run', '--rm', '--network', 'container:idle', 'box', 'true');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /non running container/);
  await ok(sb.loom('rm', 'idle'));
  await ok(sb.loom('rm', '-f', 'web'));
});

test('foreground run streams both streams and exits with the container code', { skip }, async () => {
  const r = await sb.loom('run', '--rm', 'box', 'sh', '-c', 'echo out; echo err >&2; exit 3');
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  // --rm removed it
  const ps = await ok(sb.loom('ps', '-a', '--format', '{{.Names}}'));
  assert.deepEqual(ps.split('\n').sort(), ['c1', 'c2']);
});

test('run -it on a terminal: keys go to the container raw (one echo, the container\'s), as with docker', { skip }, async () => {
  // script(1) gives bin/loom a terminal; typed lines arrive after the shell is up. In cooked mode the local
  // terminal would echo each line a second time and keep ^C for itself.
  const typed = "(sleep 2; printf 'echo mark$((40+2))\\n'; sleep 1; printf 'exit\\n'; sleep 1)";
  const r = await runCmd(['sh', '-c', `${typed} | script -qec "${LOOM} run --rm -it box sh" /dev/null`], { env: sb.env, timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /mark42/);
  assert.equal(r.stdout.split('echo mark').length - 1, 1, `one echo of the typed line: ${JSON.stringify(r.stdout)}`);
  // -it without a terminal: the docker CLI's refusal, before anything is created
  const before = await ok(sb.loom('ps', '-aq'));
  const notty = await sb.loom('run', '--rm', '-it', 'box', 'true');
  assert.equal(notty.code, 1);
  assert.equal(notty.stderr, 'the input device is not a TTY\n');
  assert.equal(await ok(sb.loom('ps', '-aq')), before);
});

test('detach keys: ctrl-p ctrl-q leave an -it container running and end the client with 0, as with docker', { skip }, async () => {
  const typed = "(sleep 2; printf '\\020\\021'; sleep 2)";
  const r = await runCmd(['sh', '-c', `${typed} | script -qec "${LOOM} run -it --name detached box sh" /dev/null`], { env: sb.env, timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /read escape sequence/);
  assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Running}}', 'detached')), 'true');
  await fails(sb.loom('attach', '--no-stdin', '--detach-keys', 'ctrl-1', 'detached'), /Invalid detach keys \(ctrl-1\) provided/);
  await ok(sb.loom('rm', '-f', 'detached'));
});

test('resize: a tty container and a tty exec get the size a client sends (the docker CLI does it after start)', { skip }, async () => {
  const id = await ok(sb.loom('run', '-d', '-t', '--name', 'sized', 'box', 'sh', '-c', 'sleep 600'));
  assert.equal((await sb.api('POST', `/containers/${id}/resize?h=33&w=100`)).status, 200);
  assert.match(await ok(sb.loom('exec', 'sized', 'sh', '-c', 'stty size </proc/1/fd/0')), /^33 100$/);
  const bad = await sb.api('POST', `/containers/${id}/resize?h=x&w=100`);
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /strconv\.Atoi: parsing "x": invalid syntax/);
  // an exec with a terminal: sized while it runs, through runc's own terminal
  const ex = await sb.api('POST', `/containers/${id}/exec`, { Cmd: ['sh', '-c', 'sleep 1; stty size >/tmp/size'], Tty: true, AttachStdout: true, AttachStderr: true });
  const started = sb.api('POST', `/exec/${ex.body.Id}/start`, { Detach: false, Tty: true });
  assert.equal((await sb.api('POST', `/exec/${ex.body.Id}/resize?h=20&w=90`)).status, 200);
  await started.catch(() => {}); // ends with the exec (its stream is empty: the output went to the file)
  assert.equal(await ok(sb.loom('exec', 'sized', 'cat', '/tmp/size')), '20 90');
  await ok(sb.loom('rm', '-f', 'sized'));
  assert.equal((await sb.api('POST', `/containers/${id}/resize?h=1&w=1`)).status, 404);
});

test('ps, logs, stop, start, rm release everything', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'talk', 'box', 'sh', '-c', 'echo hello; echo oops >&2; sleep 600'));
  const ps = await ok(sb.loom('ps'));
  assert.match(ps.split('\n')[0]!, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
  assert.match(ps, /talk/);
  await new Promise((r) => setTimeout(r, 200));
  const logs = await sb.loom('logs', 'talk');
  assert.equal(logs.stdout, 'hello\n');
  assert.equal(logs.stderr, 'oops\n');
  await ok(sb.loom('stop', '-t', '1', 'talk'));
  const st = await ok(sb.loom('inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.NetworkSettings.IPAddress}}', 'talk'));
  assert.equal(st, 'exited 137');
  assert.ok(!(await netnsNames()).includes(`${sb.netnsPrefix}talk`), 'a stopped container holds no namespace');
  await ok(sb.loom('start', 'talk'));
  assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Running}}', 'talk')), 'true');
  const before = await hostLinks();
  await ok(sb.loom('rm', '-f', 'talk'));
  // the kernel destroys the pair with the container's namespace, in the background
  const afterLinks = await eventually(hostLinks, (l) => l.length === before.length - 1);
  assert.equal(afterLinks.length, before.length - 1, 'rm removes the veth');
  const r = await sb.loom('inspect', 'talk');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No such object: talk/);
});

test('top, container prune, image prune, system prune through the docker CLI', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'topped', '--label', 'keep=1', 'box', 'sleep', '601'));
  await ok(sb.loom('create', '--name', 'stopped1', 'box', 'true'));
  await ok(sb.loom('create', '--name', 'stopped2', '--label', 'keep=1', 'box', 'true'));
  const top = await ok(sb.docker('top', 'topped'));
  assert.match(top.split('\n')[0]!, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
  assert.match(top, /\nroot\s+\d+\s+\d+ .*sleep 601$/);
  assert.equal(await ok(sb.docker('top', 'topped', '-o', 'comm')), 'COMMAND\nsleep');
  assert.equal((await ok(sb.loom('top', 'topped'))).split('\n')[0], top.split('\n')[0], 'bin/loom prints the same columns');
  assert.equal(await ok(sb.loom('top', 'topped', '-o', 'comm')), 'COMMAND\nsleep');
  await fails(sb.docker('top', 'stopped1'), /container [0-9a-f]{64} is not running/);
  // label filter first: only the unlabelled stopped one goes; the running one never
  assert.match(await ok(sb.docker('container', 'prune', '-f', '--filter', 'label!=keep=1')), /Deleted Containers:\n[0-9a-f]{64}\n/);
  const names = () => ok(sb.loom('ps', '-a', '--filter', 'name=topped', '--filter', 'name=stopped', '--format', '{{.Names}}'));
  assert.deepEqual((await names()).split('\n').sort(), ['stopped2', 'topped']);
  // an untagged image goes with image prune; one a container uses stays
  const tar = busyboxTar(sb.dir, { 'etc/pruned': 'x' }, 'pruned.tar');
  const imported = await ok(sb.loom('import', tar));
  assert.match(await ok(sb.docker('image', 'prune', '-f')), new RegExp(`deleted: ${imported}`));
  await ok(sb.docker('system', 'prune', '-f'));
  assert.equal(await names(), 'topped');
  await ok(sb.loom('create', '--name', 'stopped3', 'box', 'true'));
  await ok(sb.loom('system', 'prune', '-f'));
  assert.equal(await names(), 'topped');
  await ok(sb.loom('create', '--name', 'stopped3', 'box', 'true'));
  assert.match(await ok(sb.loom('container', 'prune', '-f')), /^Deleted Containers:\n[0-9a-f]{64}\n\nTotal reclaimed space: 0B$/);
  assert.equal(await names(), 'topped');
  assert.match(await ok(sb.loom('images', '--format', '{{.Repository}}')), /^box$/m);
  await ok(sb.loom('rm', '-f', 'topped'));
});

test('stats: cgroup and network figures in the Engine API shape; docker stats --no-stream reads them', { skip }, async () => {
  await ok(sb.loom('run', '-d', '--name', 'statsd', 'box', 'sleep', '602'));
  await ok(sb.loom('exec', 'statsd', 'ping', '-c1', '-W2', '172.17.0.1'));
  const r = await sb.api('GET', '/containers/statsd/stats?stream=false');
  assert.equal(r.status, 200);
  const st = r.body;
  assert.equal(st.name, '/statsd');
  assert.ok(st.memory_stats.usage > 0 && st.memory_stats.limit > 0, JSON.stringify(st.memory_stats));
  assert.ok(st.pids_stats.current >= 1);
  assert.ok(st.cpu_stats.online_cpus >= 1 && st.cpu_stats.system_cpu_usage > 0);
  assert.ok(st.precpu_stats.system_cpu_usage > 0, 'without one-shot a second sample gives the CPU share');
  assert.ok(st.networks.eth0.rx_bytes > 0 && st.networks.eth0.tx_packets > 0 && !('lo' in st.networks));
  assert.equal(await ok(sb.docker('stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}}', 'statsd')), 'statsd 1');
  await ok(sb.loom('stop', '-t', '0', 'statsd'));
  const stopped = (await sb.api('GET', '/containers/statsd/stats?stream=false')).body;
  assert.equal(stopped.read, '0001-01-01T00:00:00Z');
  assert.deepEqual(stopped.memory_stats, {});
  await ok(sb.loom('rm', 'statsd'));
});

test('errors are Docker-shaped', { skip }, async () => {
  let r = await sb.loom('run', '-d', '--name', 'c1', 'box', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /Conflict\. The container name "\/c1" is already in use/);
  r = await sb.loom('stop', 'nope');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /No such container: nope/);
  r = await sb.loom('run', 'nosuchimage');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /Unable to find image 'nosuchimage(:latest)?' locally/);
  r = await sb.loom('rm', 'c1');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /container is running: stop the container before removing or force remove/);
  r = await sb.loom('run', '--network', 'nosuchnet', 'box', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /network nosuchnet not found/);
  // as moby: the create succeeds and the start fails, so the docker CLI does not go and pull the image
  r = await sb.docker('run', '--name', 'nonet', '--network', 'nosuchnet', 'box', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /network nosuchnet not found/);
  assert.doesNotMatch(r.stderr, /Unable to find image/);
  assert.equal((await sb.loom('ps', '-a', '--filter', 'name=nonet', '--format', '{{.Status}}')).stdout.trim(), 'Created');
  r = await sb.docker('run', '--rm', '--network', 'container:nosuchcontainer', 'box', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /No such container: nosuchcontainer/);
  assert.equal((await sb.loom('rm', 'nonet')).code, 0);
});

test('a failed start rolls back: no veth, namespace or address left', { skip }, async () => {
  const links = await hostLinks();
  const nss = await netnsNames();
  const r = await sb.loom('run', '-d', '--name', 'broken', 'box', '/no/such/binary');
  assert.notEqual(r.code, 0);
  assert.deepEqual(await hostLinks(), links);
  assert.deepEqual(await netnsNames(), nss);
  await ok(sb.loom('rm', '-f', 'broken'));
  // the address the failed start had reserved is free again: the next container gets the next address in turn
  await ok(sb.loom('run', '-d', '--name', 'c3', 'box', 'sleep', '600'));
  const ip = await ok(sb.loom('inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'c3'));
  assert.match(ip, /^172\.17\.0\.\d+$/);
  assert.notEqual(ip, '172.17.0.2');
  assert.notEqual(ip, '172.17.0.3');
});

test('daemon SIGKILL and restart: containers keep running, are adopted, networking works, no address reused', { skip }, async () => {
  const pid = await ok(sb.loom('inspect', '-f', '{{.State.Pid}}', 'c1'));
  await sb.stopDaemon('SIGKILL');
  await ok(sb.hostExec(['kill', '-0', pid]), 'container survives the daemon');
  await sb.startDaemon();
  assert.equal(await ok(sb.loom('inspect', '-f', '{{.State.Running}} {{.State.Pid}}', 'c1')), `true ${pid}`);
  await ok(sb.loom('exec', 'c2', 'ping', '-c1', '-W2', '172.17.0.2'), 'ping after restart');
  await ok(sb.loom('run', '-d', '--name', 'c4', 'box', 'sleep', '600'));
  const used = await ok(sb.loom('ps', '--format', '{{.Names}}'));
  const ips: string[] = [];
  for (const n of used.split('\n')) ips.push(await ok(sb.loom('inspect', '-f', '{{.NetworkSettings.IPAddress}}', n)));
  assert.equal(new Set(ips).size, ips.length, `addresses unique: ${ips}`);
  // a container stopped while the daemon is down gets its exit recorded at the next start
  await sb.stopDaemon('SIGTERM');
  await ok(sb.hostExec(['kill', '-9', await ok(sb.hostExec(['sh', '-c', `cat /proc/${pid}/status >/dev/null && echo ${pid}`]))]));
  await sb.startDaemon();
  const st = await ok(sb.loom('inspect', '-f', '{{.State.Status}}', 'c1'));
  assert.equal(st, 'exited');
  assert.ok(!(await netnsNames()).includes(`${sb.netnsPrefix}c1`));
  await ok(sb.loom('start', 'c1'));
});

test('the docker CLI drives loom', { skip }, async () => {
  assert.match(await ok(sb.docker('version', '--format', '{{.Server.APIVersion}}')), /^1\.\d+$/);
  const id = await ok(sb.docker('run', '-d', '--name', 'dk1', 'box', 'sleep', '600'), 'docker run -d');
  assert.match(id, /^[0-9a-f]{64}$/);
  const ip = await ok(sb.docker('inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'dk1'));
  assert.match(ip, /^172\.17\.0\.\d+$/);
  await ok(sb.docker('exec', 'c2', 'ping', '-c1', '-W2', ip), 'docker exec ping');
  const r = await sb.docker('run', '--rm', 'box', 'sh', '-c', 'echo out; echo err >&2; exit 5');
  assert.equal(r.code, 5);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  assert.equal(await ok(sb.docker('run', '--rm', '--network', 'none', 'box', 'sh', '-c', 'ls /sys/class/net')), 'lo');
  assert.match(await ok(sb.docker('ps')), /dk1/);
  assert.match(await ok(sb.docker('network', 'ls')), /bridge\s+bridge\s+local/);
  assert.match(await ok(sb.docker('logs', 'dk1')), /^$/);
  await ok(sb.docker('stop', '-t', '1', 'dk1'));
  await ok(sb.docker('rm', 'dk1'));
  const e = await sb.docker('rm', 'dk1');
  assert.notEqual(e.code, 0);
  assert.match(e.stderr, /No such container: dk1/);
});

test('rm -f of everything leaves no veth, namespace or mount behind', { skip }, async () => {
  const names = (await ok(sb.loom('ps', '-aq'))).split('\n').filter(Boolean);
  await ok(sb.loom('rm', '-f', ...names));
  const veths = async () => (await hostLinks()).filter((l) => l.startsWith('veth'));
  assert.deepEqual(await eventually(veths, []), []);
  assert.deepEqual(await netnsNames(), []);
  const mounts = await ok(sb.hostExec(['cat', '/proc/mounts']));
  assert.doesNotMatch(mounts, new RegExp(`${sb.dir}/.*containers`));
});

void requireRoot;
