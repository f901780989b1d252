import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBind, parseMount, parseTmpfs, parseVolumesFrom, planMounts, mountsView, validMountMode, tmpfsSize } from '../../src/volumes/specs.ts';
import { mountFlags, parseMountFlag, ramInBytes } from '../../src/cli/mountflags.ts';
import { refuseUnsupported } from '../../src/core/unsupported.ts';
import { validateLocalOptions } from '../../src/volumes/volumes.ts';

test('-v: binds, named volumes, modes', () => {
  const b = parseBind('/srv/conf:/etc/app:ro');
  assert.deepEqual({ ...b }, { Type: 'bind', Name: '', Source: '/srv/conf', Destination: '/etc/app', Driver: '', Mode: 'ro', RW: false, Propagation: 'rprivate', copyData: false, createSource: true });
  assert.equal(parseBind('/a/:/b/:rw,rshared').Propagation, 'rshared');
  assert.equal(parseBind('/a:/b:z').RW, true);
  const v = parseBind('appdata:/var/lib/app');
  assert.equal(v.Type, 'volume');
  assert.equal(v.Name, 'appdata');
  assert.equal(v.Mode, 'z'); // as dockerd shows a -v volume without a mode
  assert.equal(v.copyData, true);
  assert.equal(parseBind('proj_data:/data:nocopy').copyData, false);
});

test('-v: Docker\'s refusals', () => {
  assert.throws(() => parseBind('/a:/b:rw,ro'), { message: 'invalid mode: rw,ro' });
  assert.throws(() => parseBind('/a:/b:bogus'), { message: 'invalid mode: bogus' });
  assert.throws(() => parseBind('/data:rw'), { message: "invalid volume specification: '/data:rw'" });
  assert.throws(() => parseBind('a:b:c:d:e'), { message: "invalid volume specification: 'a:b:c:d:e'" });
  assert.throws(() => parseBind(':/x'), { message: "invalid volume specification: ':/x'" });
  assert.throws(() => parseBind('/a:rel'), /invalid mount path: 'rel' mount path must be absolute/);
  assert.throws(() => parseBind('/a:/'), /destination can't be '\/'/);
  // a relative host path is a volume name, and refused as one (Docker's words)
  assert.throws(() => parseBind('foo/bar:/x'), { message: 'create foo/bar: "foo/bar" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path' });
  assert.throws(() => parseBind('bad*name:/x'), /includes invalid characters for a local volume name/);
  assert.throws(() => parseBind('x:/x'), /includes invalid characters/); // names have at least two characters
});

test('--mount: bind, volume, tmpfs with their options', () => {
  const exists = (p: string) => p === '/there';
  assert.throws(() => parseMount({ Type: 'bind', Source: '/x', Target: '/y' }, exists), { message: 'invalid mount config for type "bind": bind source path does not exist: /x' });
  const b = parseMount({ Type: 'bind', Source: '/there', Target: '/y', ReadOnly: true, BindOptions: { Propagation: 'rslave', NonRecursive: true } }, exists);
  assert.equal(b.RW, false);
  assert.equal(b.Propagation, 'rslave');
  assert.equal(b.nonRecursive, true);
  assert.throws(() => parseMount({ Type: 'bind', Source: 'rel', Target: '/y' }, exists), /invalid mount path: 'rel' mount path must be absolute/);
  const v = parseMount({ Type: 'volume', Source: 'v1', Target: '/d', VolumeOptions: { NoCopy: true, Labels: { a: 'b' }, DriverConfig: { Options: { type: 'tmpfs', device: 'tmpfs' } } } }, exists);
  assert.equal(v.copyData, false);
  assert.deepEqual(v.volumeLabels, { a: 'b' });
  assert.deepEqual(v.volumeOptions, { type: 'tmpfs', device: 'tmpfs' });
  assert.equal(v.Mode, 'z');
  const anon = parseMount({ Type: 'volume', Target: '/d' }, exists);
  assert.equal(anon.anonymous, true);
  assert.throws(() => parseMount({ Type: 'volume', Target: '/d', ReadOnly: true }, exists), /must not set ReadOnly mode when using anonymous volumes/);
  assert.throws(() => parseMount({ Type: 'volume', Source: 'v', Target: '/d', VolumeOptions: { Subpath: 'x' } }, exists), /Subpath is not supported by loom/);
  assert.throws(() => parseMount({ Type: 'tmpfs', Target: '/t', BindOptions: {} }, exists), { message: 'invalid mount config for type "tmpfs": field BindOptions must not be specified' });
  assert.throws(() => parseMount({ Type: 'nope', Target: '/t' }, exists), { message: 'invalid mount config for type "nope": mount type unknown' });
  const t = parseMount({ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 64 << 20, Mode: 0o1770, Options: [['exec']] } }, exists);
  assert.deepEqual(t.tmpfsOptions, ['nosuid', 'nodev', 'mode=1770', 'size=64m', 'exec']);
  assert.equal(tmpfsSize(1000), '1000');
});

test('--tmpfs and --volumes-from', () => {
  const t = parseTmpfs('/run', 'rw,size=10m,exec');
  assert.deepEqual(t.tmpfsOptions, ['nosuid', 'nodev', 'rw', 'size=10m', 'exec']);
  assert.equal(t.listed, false);
  assert.throws(() => parseTmpfs('run', ''), /invalid tmpfs destination/);
  assert.throws(() => parseTmpfs('/run', 'bogus=1'), { message: 'invalid tmpfs option ["bogus" "1"]' });
  assert.deepEqual(parseVolumesFrom('c1'), { ref: 'c1', mode: 'rw' });
  assert.deepEqual(parseVolumesFrom('c1:ro'), { ref: 'c1', mode: 'ro' });
  assert.throws(() => parseVolumesFrom('c1:nocopy'), { message: 'invalid mode: nocopy' });
  assert.throws(() => parseVolumesFrom(''), /cannot be an empty string/);
  assert.equal(validMountMode('ro,z,rshared,nocopy,cached'), true);
});

test('planMounts: image volumes under explicit mounts, duplicates refused, parents first', () => {
  const ms = planMounts({
    binds: ['/srv:/data/sub', 'named:/data'], tmpfs: { '/run': '' }, configVolumes: ['/data', '/var/cache/'],
    mountsOf: () => [], exists: () => true,
  });
  assert.deepEqual(ms.map((m) => [m.Type, m.Destination, m.Name]), [['volume', '/data', 'named'], ['tmpfs', '/run', ''], ['volume', '/var/cache', ''], ['bind', '/data/sub', '']]);
  assert.equal(ms[2]!.anonymous, true);
  assert.throws(() => planMounts({ binds: ['/a:/x'], mounts: [{ Type: 'tmpfs', Target: '/x' }], mountsOf: () => [], exists: () => true }), { message: 'Duplicate mount point: /x' });
  const from = planMounts({ volumesFrom: ['src:ro'], mountsOf: () => [parseBind('v1:/d'), parseTmpfs('/t', '')], exists: () => true });
  assert.deepEqual(from.map((m) => [m.Destination, m.RW, m.copyData]), [['/d', false, false]]);
  assert.deepEqual(mountsView([parseBind('/h:/c:ro'), parseTmpfs('/t', '')]), [{ Type: 'bind', Source: '/h', Destination: '/c', Mode: 'ro', RW: false, Propagation: 'rprivate' }]);
});

test('CLI: -v, --mount, --tmpfs into a request as the docker CLI builds it', () => {
  const r = mountFlags({ volume: ['/anon', 'v1:/d', './rel:/r:ro'], mount: ['type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770'], tmpfs: ['/run:size=1m'], 'volumes-from': ['c1'] });
  assert.deepEqual(r.Volumes, { '/anon': {} });
  assert.equal(r.Binds[0], 'v1:/d');
  assert.match(r.Binds[1]!, /^\/.*\/rel:\/r:ro$/);
  assert.deepEqual(r.Mounts[0], { Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 64 << 20, Mode: 0o1770 } });
  assert.deepEqual(r.Tmpfs, { '/run': 'size=1m' });
  assert.deepEqual(parseMountFlag('src=v,target=/x,readonly,volume-nocopy,volume-opt=type=tmpfs'), { Source: 'v', Target: '/x', ReadOnly: true, VolumeOptions: { NoCopy: true, DriverConfig: { Options: { type: 'tmpfs' } } }, Type: 'volume' });
  assert.throws(() => parseMountFlag('type=bind,src=/a'), /target is required/);
  assert.throws(() => parseMountFlag('type=bind,src=/a,dst=/b,volume-nocopy'), /cannot mix 'volume-\*' options with mount type 'bind'/);
  assert.equal(ramInBytes('1g'), 1 << 30);
});

test('unsupported create fields are refused by name; clients\' zero values pass', () => {
  assert.doesNotThrow(() => refuseUnsupported({ Image: 'x', Healthcheck: null, NetworkDisabled: false, HostConfig: {
    Memory: 0, CpuShares: 0, MemorySwappiness: -1, LogConfig: { Type: '', Config: {} }, ShmSize: 0, Privileged: false, CapAdd: null,
    IpcMode: '', CgroupnsMode: '', Devices: [], Ulimits: null, OomKillDisable: false, PidsLimit: null, VolumeDriver: '', Isolation: '', Runtime: '',
  } }));
  assert.throws(() => refuseUnsupported({ HostConfig: { Memory: 1 << 20 } }), { message: 'HostConfig.Memory is not supported by loom (set to 1048576)' });
  assert.throws(() => refuseUnsupported({ HostConfig: { Privileged: true } }), /HostConfig\.Privileged/);
  assert.throws(() => refuseUnsupported({ HostConfig: { LogConfig: { Type: 'syslog', Config: {} } } }), /HostConfig\.LogConfig/);
  assert.doesNotThrow(() => refuseUnsupported({ NetworkingConfig: { EndpointsConfig: { n: { IPAMConfig: { IPv4Address: '10.0.0.2', LinkLocalIPs: [] }, Aliases: ['a'], DriverOpts: null } } } }));
  assert.throws(() => refuseUnsupported({ NetworkingConfig: { EndpointsConfig: { n: { IPAMConfig: { LinkLocalIPs: ['169.254.0.9'] } } } } }), /NetworkingConfig\.EndpointsConfig\.n\.IPAMConfig is not supported/);
  assert.throws(() => refuseUnsupported({ Healthcheck: { Test: ['CMD', 'true'] } }), { message: 'Healthcheck is not supported by loom (set to {"Test":["CMD","true"]})' });
});

test('local driver options', () => {
  assert.doesNotThrow(() => validateLocalOptions({ type: 'tmpfs', device: 'tmpfs', o: 'size=1m' }));
  assert.doesNotThrow(() => validateLocalOptions({ type: 'none', device: '/srv', o: 'bind' }));
  assert.throws(() => validateLocalOptions({ foo: 'x' }), { message: 'invalid option: "foo"' });
  assert.throws(() => validateLocalOptions({ type: 'tmpfs' }), { message: 'missing required option: "device"' });
  assert.throws(() => validateLocalOptions({ type: 'nfs', device: ':/x', o: 'addr=1.2.3.4' }), /local volume type "nfs" is not supported by loom/);
});

test('image VOLUMEs are read defensively from the image record', async () => {
  const { imageVolumes } = await import('../../src/volumes/mounter.ts');
  assert.deepEqual(imageVolumes({ config: { Volumes: { '/var/lib/db': {}, '/logs': {} } } }), ['/var/lib/db', '/logs']);
  assert.deepEqual(imageVolumes({ config: { Volumes: null } }), []);
  assert.deepEqual(imageVolumes({ config: {} }), []);
  assert.deepEqual(imageVolumes(undefined), []);
  // image volumes become anonymous volumes unless something else is mounted there
  const ms = planMounts({ binds: ['named:/var/lib/db'], configVolumes: imageVolumes({ config: { Volumes: { '/var/lib/db': {}, '/logs': {} } } }), mountsOf: () => [], exists: () => true });
  assert.deepEqual(ms.map((m) => [m.Destination, m.Name, !!m.anonymous]), [['/logs', '', true], ['/var/lib/db', 'named', false]]);
});
