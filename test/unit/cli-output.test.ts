// The docker CLI's output rules that loom's CLI copies: Go's tabwriter with docker's settings, PORTS text,
// go-units durations, --format handling, ps rows, and the parsing of run options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tabwrite, displayablePorts, humanDuration, formatRows, goQuote, ellipsis, templateOf, humanSize } from '../../src/cli/output.ts';
import { psRow, toTimestamp, parseEnvFile, parseRestartPolicy, validateExtraHost, runExitCode } from '../../src/cli/container.ts';
import { renderTemplate } from '../../src/cli/gotemplate.ts';

test('tabwriter: minimum width 10, padding 3, last cell unpadded, empty cells padded', () => {
  assert.equal(tabwrite('NETWORK ID\tNAME\tDRIVER\n2b2bbd693e9b\tbridge\tbridge\n'), 'NETWORK ID     NAME      DRIVER\n2b2bbd693e9b   bridge    bridge\n');
  assert.equal(tabwrite('A\t\tC\nlonger cell\tx\ty\n'), 'A                       C\nlonger cell   x         y\n');
  // a trailing empty column is padded, as Go's tabwriter does
  assert.equal(tabwrite('N\tP\t\nc1\t\t\n'), 'N         P         \nc1                  \n');
  // a line without tabs ends a column block
  assert.equal(tabwrite('a\tb\nplain\nccccccccccccccc\td\n'), 'a         b\nplain\nccccccccccccccc   d\n');
  assert.equal(tabwrite('"x…"\ty\n'), '"x…"      y\n');
});

test('PORTS as docker prints them: ranges grouped, IPv6 in brackets, exposed ports first', () => {
  assert.equal(displayablePorts([{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }]), '0.0.0.0:8080->80/tcp');
  assert.equal(displayablePorts([
    { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
  ]), '0.0.0.0:8080->80/tcp, [::]:8080->80/tcp');
  assert.equal(displayablePorts([
    { IP: '0.0.0.0', PrivatePort: 9001, PublicPort: 9001, Type: 'udp' },
    { IP: '0.0.0.0', PrivatePort: 9000, PublicPort: 9000, Type: 'udp' },
    { PrivatePort: 7000, Type: 'tcp' },
    { PrivatePort: 7001, Type: 'tcp' },
    { PrivatePort: 7003, Type: 'tcp' },
  ]), '7000-7001/tcp, 7003/tcp, 0.0.0.0:9000-9001->9000-9001/udp');
  assert.equal(displayablePorts([{ IP: '::', PrivatePort: 53, PublicPort: 53, Type: 'udp' }]), '[::]:53->53/udp');
  assert.equal(displayablePorts([]), '');
});

test('go-units durations: truncated, with docker\'s words', () => {
  assert.equal(humanDuration(999), 'Less than a second');
  assert.equal(humanDuration(1999), '1 second');
  assert.equal(humanDuration(59_999), '59 seconds');
  assert.equal(humanDuration(60_000), 'About a minute');
  assert.equal(humanDuration(119_999), 'About a minute');
  assert.equal(humanDuration(120_000), '2 minutes');
  assert.equal(humanDuration(3_600_000 * 1.4), 'About an hour');
  assert.equal(humanDuration(3_600_000 * 1.6), '2 hours');
  assert.equal(humanDuration(3_600_000 * 24 * 3), '3 days');
  assert.equal(humanDuration(3_600_000 * 24 * 15), '2 weeks');
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(4_261_234), '4.26MB');
});

test('--format: table prefix, json, literal \\t, header functions', () => {
  const rows = [{ Name: 'c1', State: 'running' }, { Name: 'longer-name', State: 'exited' }];
  const headers = { Name: 'NAME', State: 'STATE' };
  assert.equal(formatRows('table {{.Name}}\\t{{.State}}', rows, headers), 'NAME          STATE\nc1            running\nlonger-name   exited\n');
  assert.equal(formatRows('table {{.Name | upper}}\\t{{json .State}}', rows, headers), 'NAME          STATE\nC1            "running"\nLONGER-NAME   "exited"\n');
  assert.equal(formatRows('{{.Name}}:{{.State}}', rows, headers), 'c1:running\nlonger-name:exited\n');
  assert.equal(formatRows('json', rows, headers), '{"Name":"c1","State":"running"}\n{"Name":"longer-name","State":"exited"}\n');
  assert.deepEqual(templateOf('table'), { tpl: '', table: true });
  assert.throws(() => formatRows('{{.Name', rows, headers), /template parsing error: template: :1: unclosed action/);
});

test('ps rows: truncated id and command, quoted command, names, labels sorted, Label method, JSON as docker marshals it', () => {
  const c = {
    Id: 'a'.repeat(64), Names: ['/web', '/app/db'], Image: 'box', ImageID: 'sha256:' + 'b'.repeat(64), Command: 'sh -c \'echo "hi there"\'',
    Created: Math.floor(Date.now() / 1000) - 5, Ports: [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }],
    Labels: { z: '1', a: '2' }, State: 'running', Status: 'Up 4 seconds', NetworkSettings: { Networks: { bridge: {} } }, Mounts: [],
  };
  const r = psRow(c, true);
  assert.equal(r.ID, 'aaaaaaaaaaaa');
  assert.equal(r.Names, 'web');
  assert.equal(r.Command, '"sh -c \'echo \\"hi the…"');
  assert.equal(r.Labels, 'a=2,z=1');
  assert.equal(r.RunningFor, '5 seconds ago');
  assert.equal(r.Ports, '0.0.0.0:8080->80/tcp');
  assert.equal(renderTemplate('{{.Label "z"}}|{{.Label "nope"}}', r), '1|');
  assert.equal(psRow(c, false).Names, 'web,app/db');
  assert.equal(psRow({ ...c, Image: 'sha256:' + 'b'.repeat(64) }, true).Image, 'bbbbbbbbbbbb');
  const j = renderTemplate('{{json .}}', r);
  assert.match(j, /^\{"Command":.*"Ports":"0\.0\.0\.0:8080-\\u003e80\/tcp".*\}$/);
  assert.deepEqual(Object.keys(JSON.parse(j)), ['Command', 'CreatedAt', 'ID', 'Image', 'Labels', 'LocalVolumes', 'Mounts', 'Names', 'Networks', 'Platform', 'Ports', 'RunningFor', 'Size', 'State', 'Status']);
  assert.equal(goQuote('a"b\\c\n'), '"a\\"b\\\\c\\n"');
  assert.equal(ellipsis('12345', 5), '12345');
  assert.equal(ellipsis('123456', 5), '1234…');
});

test('--since/--until values become unix timestamps as the docker client sends them', () => {
  const now = Date.parse('2025-01-02T03:04:05Z');
  assert.equal(toTimestamp('10s', now), String(now / 1000 - 10));
  assert.equal(toTimestamp('1h30m', now), String(now / 1000 - 5400));
  assert.equal(toTimestamp('1700000000', now), '1700000000');
  assert.equal(toTimestamp('1700000000.5', now), '1700000000.5');
  assert.equal(toTimestamp('2025-01-02T03:04:05.123456789Z', now), `${now / 1000}.123456789`);
  assert.equal(toTimestamp('2025-01-02T03:04:05Z', now), `${now / 1000}.000000000`);
  assert.equal(toTimestamp('2025-01-02T01:04:05+02:00', now).split('.')[0], String(now / 1000 - 4 * 3600));
  assert.throws(() => toTimestamp('yesterday', now), /failed to parse value as time or duration: "yesterday"/);
});

test('run option parsing as the docker CLI: env files, restart policies, --add-host, exit codes', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'l6-unit-'));
  try {
    const f = path.join(dir, 'e');
    fs.writeFileSync(f, '\uFEFF# c\n\n  A=1 \nB\nC\nD=x=y\n');
    assert.deepEqual(parseEnvFile(f, (k) => (k === 'B' ? 'bee' : undefined)), ['A=1 ', 'B=bee', 'D=x=y']);
    fs.writeFileSync(f, 'BAD KEY=1\n');
    assert.throws(() => parseEnvFile(f), /variable 'BAD KEY' contains whitespaces/);
    assert.throws(() => parseEnvFile(path.join(dir, 'none')), /open .*none: no such file or directory/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.deepEqual(parseRestartPolicy('on-failure:3'), { Name: 'on-failure', MaximumRetryCount: 3 });
  assert.deepEqual(parseRestartPolicy('always'), { Name: 'always', MaximumRetryCount: 0 });
  assert.throws(() => parseRestartPolicy(':3'), /no policy provided before colon/);
  assert.throws(() => parseRestartPolicy('on-failure:x'), /maximum retry count must be an integer/);
  assert.equal(validateExtraHost('db:10.0.0.1'), 'db:10.0.0.1');
  assert.equal(validateExtraHost('v6=[2001:db8::1]'), 'v6:2001:db8::1');
  assert.equal(validateExtraHost('gw:host-gateway'), 'gw:host-gateway');
  assert.throws(() => validateExtraHost('nohost'), /bad format for add-host: "nohost"/);
  assert.throws(() => validateExtraHost('h:1.2.3'), /invalid IP address in add-host: "1.2.3"/);
  assert.equal(runExitCode('exec: "x": executable file not found in $PATH'), 127);
  assert.equal(runExitCode('exec: "/etc": permission denied'), 126);
  assert.equal(runExitCode('network nosuchnet not found'), 125);
});
