// Body validation gives encoding/json's messages, as dockerd 20.10 answered them for the same bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateBody, type BodyKind } from '../../src/api/schemas.ts';
import { parseJsonBody } from '../../src/api/jsonbody.ts';

const refused = (kind: BodyKind, body: unknown) => {
  try {
    validateBody(kind, body);
  } catch (e: any) {
    assert.equal(e.status, 400);
    return e.message as string;
  }
  assert.fail(`accepted ${JSON.stringify(body)}`);
};
const W = 'Go struct field ContainerConfigWrapper';

test('container create: wrong types are refused with Go words', () => {
  assert.equal(refused('containerCreate', { Image: 'x', Env: 'x' }), `json: cannot unmarshal string into ${W}.Env of type []string`);
  assert.equal(refused('containerCreate', { Image: 5 }), `json: cannot unmarshal number into ${W}.Image of type string`);
  assert.equal(refused('containerCreate', { Image: 'x', Labels: [] }), `json: cannot unmarshal array into ${W}.Labels of type map[string]string`);
  assert.equal(refused('containerCreate', { Image: 'x', Tty: 'yes' }), `json: cannot unmarshal string into ${W}.Tty of type bool`);
  assert.equal(refused('containerCreate', { Image: 'x', HostConfig: 'x' }), `json: cannot unmarshal string into ${W}.HostConfig of type container.HostConfig`);
  assert.equal(refused('containerCreate', { Image: 'x', HostConfig: { PortBindings: { '80/tcp': [{ HostPort: 5 }] } } }),
    'json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string');
  assert.equal(refused('containerCreate', { Image: 'x', HostConfig: { PortBindings: { '80/tcp': { HostPort: '5' } } } }),
    'json: cannot unmarshal object into Go struct field HostConfig.HostConfig.PortBindings of type []nat.PortBinding');
  assert.equal(refused('containerCreate', { Image: 'x', NetworkingConfig: { EndpointsConfig: 'x' } }),
    'json: cannot unmarshal string into Go struct field NetworkingConfig.NetworkingConfig.EndpointsConfig of type map[string]*network.EndpointSettings');
  assert.equal(refused('containerCreate', { Image: 'x', Env: [5] }), `json: cannot unmarshal number into ${W}.Env of type string`);
  assert.equal(refused('containerCreate', { Image: 'x', HostConfig: { NetworkMode: 5 } }), 'json: cannot unmarshal number into Go struct field HostConfig.HostConfig.NetworkMode of type container.NetworkMode');
  assert.equal(refused('containerCreate', { Image: 'x', HostConfig: { Links: [5] } }), 'json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Links of type string');
  assert.equal(refused('containerCreate', { Image: 'x', NetworkingConfig: { EndpointsConfig: { n: { Aliases: 'x' } } } }),
    'json: cannot unmarshal string into Go struct field EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string');
  assert.equal(refused('containerCreate', { Image: 'x', Cmd: 5 }), `json: cannot unmarshal number into ${W}.Cmd of type string`);
  assert.equal(refused('containerCreate', { Image: 'x', Cmd: [5] }), `json: cannot unmarshal array into ${W}.Cmd of type string`);
  assert.equal(refused('containerCreate', { Image: 'x', StopTimeout: 1.5 }), `json: cannot unmarshal number 1.5 into ${W}.StopTimeout of type int`);
  assert.equal(refused('containerCreate', { Image: 'x', ExposedPorts: { '80/tcp': 5 } }), `json: cannot unmarshal number into ${W}.ExposedPorts of type struct {}`);
  assert.equal(refused('containerCreate', { Image: 'x', HostConfig: { Memory: '1g' } }), 'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64');
  assert.equal(refused('containerCreate', [1]), 'json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper');
  assert.equal(refused('containerCreate', 'x'), 'json: cannot unmarshal string into Go value of type runconfig.ContainerConfigWrapper');
  // pointers are reported as what they point to, as Go does
  assert.equal(refused('containerCreate', { Image: 'x', HostConfig: { Init: 'yes' } }), 'json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Init of type bool');
  // the first in the document, as Go's decoder meets them
  assert.equal(refused('containerCreate', { Labels: 5, Env: 3 }), `json: cannot unmarshal number into ${W}.Labels of type map[string]string`);
  assert.equal(refused('containerCreate', { Env: 3, Labels: 5 }), `json: cannot unmarshal number into ${W}.Env of type []string`);
});

test('container create: right types, nulls and unknown fields pass', () => {
  const body = { Image: 'x', Env: null, Cmd: 'sh', Entrypoint: ['a'], Labels: { a: 'b' }, Unknown: { deep: [1, 'x'] }, HostConfig: { Binds: ['/a:/b'], Mounts: [{ Type: 'bind', Source: '/a', Target: '/b' }], Memory: 5, Init: null }, NetworkingConfig: { EndpointsConfig: { n: null } } };
  assert.deepEqual(validateBody('containerCreate', body), body);
  assert.deepEqual(validateBody('containerCreate', undefined), {});
});

test('network create, connect, disconnect, exec, update: Go words', () => {
  const N = 'Go struct field NetworkCreateRequest';
  assert.equal(refused('networkCreate', { Name: 5 }), `json: cannot unmarshal number into ${N}.Name of type string`);
  assert.equal(refused('networkCreate', { Name: 'a', IPAM: 'x' }), `json: cannot unmarshal string into ${N}.IPAM of type network.IPAM`);
  assert.equal(refused('networkCreate', { Name: 'a', Internal: 'yes' }), `json: cannot unmarshal string into ${N}.Internal of type bool`);
  assert.equal(refused('networkCreate', { Name: 'a', Options: 'x' }), `json: cannot unmarshal string into ${N}.Options of type map[string]string`);
  assert.equal(refused('networkCreate', { Name: 'a', Labels: [] }), `json: cannot unmarshal array into ${N}.Labels of type map[string]string`);
  assert.equal(refused('networkCreate', { Name: 'a', Driver: 5 }), `json: cannot unmarshal number into ${N}.Driver of type string`);
  assert.equal(refused('networkCreate', { Name: 'a', IPAM: { Config: [{ Subnet: 5 }] } }), 'json: cannot unmarshal number into Go struct field IPAMConfig.IPAM.Config.Subnet of type string');
  assert.equal(refused('networkConnect', { Container: 5 }), 'json: cannot unmarshal number into Go struct field NetworkConnect.Container of type string');
  assert.equal(refused('networkConnect', { Container: 'a', EndpointConfig: { Aliases: 'x' } }), 'json: cannot unmarshal string into Go struct field EndpointSettings.EndpointConfig.Aliases of type []string');
  assert.equal(refused('networkDisconnect', { Container: 5 }), 'json: cannot unmarshal number into Go struct field NetworkDisconnect.Container of type string');
  assert.equal(refused('networkDisconnect', { Container: 'a', Force: 'yes' }), 'json: cannot unmarshal string into Go struct field NetworkDisconnect.Force of type bool');
  assert.equal(refused('execCreate', { Cmd: 'ls' }), 'json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string');
  assert.equal(refused('containerUpdate', { RestartPolicy: 'x' }), 'json: cannot unmarshal string into Go struct field UpdateConfig.RestartPolicy of type container.RestartPolicy');
  assert.equal(refused('containerUpdate', { Memory: 'x' }), 'json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64');
});

test('JSON bodies: nesting is bounded as in Go (10000), without recursion', () => {
  const deep = (n: number) => `{"Image":"x","X":${'['.repeat(n)}${']'.repeat(n)}}`;
  assert.throws(() => parseJsonBody(deep(100_000)), { status: 400, message: "invalid character '[' exceeded max depth" });
  assert.equal(typeof parseJsonBody(deep(9_000)), 'object');
  assert.throws(() => parseJsonBody('{"a":'), { status: 400 });
  assert.equal(parseJsonBody('  '), undefined);
  // brackets inside strings do not count
  assert.deepEqual(parseJsonBody(`{"a":"${'['.repeat(20_000)}\\""}`), { a: `${'['.repeat(20_000)}"` });
});

test('create: values moby refuses at create are refused before anything is made', async () => {
  const { checkCreateConfig } = await import('../../src/api/configcheck.ts');
  const no = (b: object, re: RegExp) => assert.throws(() => checkCreateConfig(b), (e: any) => e.status === 400 && re.test(e.message));
  no({ StopSignal: 'SIGNOPE' }, /^Invalid signal: SIGNOPE$/);
  no({ StopSignal: '99' }, /^Invalid signal: 99$/);
  no({ WorkingDir: '../x' }, /^the working directory '\.\.\/x' is invalid, it needs to be an absolute path$/);
  no({ Env: ['=x'] }, /^invalid environment variable: =x$/);
  no({ Env: ['A\0=b'] }, /invalid environment variable: "A\\u0000=b": contains a NUL byte/);
  no({ Cmd: ['a\0b'] }, /invalid Cmd/);
  no({ Entrypoint: 'a\0b' }, /invalid Entrypoint/);
  no({ HostConfig: { LogConfig: { Type: 'nope' } } }, /^logger: no log driver named 'nope' is registered$/);
  no({ HostConfig: { LogConfig: { Type: 'syslog' } } }, /log driver 'syslog' is not supported by loom/);
  no({ HostConfig: { LogConfig: { Type: 'json-file', Config: { 'max-sise': '1k' } } } }, /^unknown log opt 'max-sise' for json-file log driver$/);
  no({ HostConfig: { LogConfig: { Config: { tag: 'x' } } } }, /log opt 'tag' is not supported by loom/);
  no({ HostConfig: { LogConfig: { Config: { 'max-size': '10x' } } } }, /^invalid size: '10x'$/);
  no({ HostConfig: { LogConfig: { Config: { 'max-size': '0' } } } }, /^max-size must be a positive number$/);
  no({ HostConfig: { LogConfig: { Config: { 'max-size': '1k', 'max-file': '0' } } } }, /^max-file cannot be less than 1$/);
  checkCreateConfig({ HostConfig: { LogConfig: { Type: 'json-file', Config: { 'max-size': '10k', 'max-file': '3' } } } });
  no({ HostConfig: { LogConfig: { Config: { mode: 'fast' } } } }, /^logger: logging mode not supported: fast$/);
  const { checkExecConfig } = await import('../../src/api/configcheck.ts');
  assert.throws(() => checkExecConfig({ Cmd: ['ls', 'a\0'] }), /invalid Cmd "a\\u0000": contains a NUL byte/);
  checkExecConfig({ Cmd: ['ls'], Env: ['A=1'], WorkingDir: 'rel' });
  checkCreateConfig({ WorkingDir: '/x', Env: ['A=b', 'B'], Cmd: 'sh', HostConfig: { LogConfig: { Type: '', Config: {} } } });
  checkCreateConfig({ HostConfig: { LogConfig: { Type: 'json-file', Config: { mode: 'blocking' } } } });
});
