// The Dockerfile parser and instruction checks, against what buildkit's parser (used by moby's classic
// builder) produces for the same text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile, parseWords, extractFlags, ParseError } from '../../src/images/build/parser.ts';
import { loadDockerfile, neededStages, targetStage, parseDuration } from '../../src/images/build/instructions.ts';

const nodes = (t: string) => parseDockerfile(t).nodes;
const parseErr = (t: string, msg: string | RegExp) => assert.throws(() => loadDockerfile(t), (e: Error) => {
  if (typeof msg === 'string') assert.equal(e.message, msg);
  else assert.match(e.message, msg);
  return true;
});

test('instructions, arguments and lines', () => {
  const n = nodes('FROM busybox AS base\n\n# a comment\nrun echo  hi there\nCMD ["sh", "-c", "echo x"]\n');
  assert.deepEqual(n.map((x) => [x.cmd, x.args, x.json, x.startLine]), [
    ['from', ['busybox', 'AS', 'base'], false, 1],
    ['run', ['echo  hi there'], false, 4],
    ['cmd', ['sh', '-c', 'echo x'], true, 5],
  ]);
  assert.equal(n[1]!.name, 'RUN');
});

test('line continuations skip comments and blank lines; the end line is counted', () => {
  const n = nodes('FROM a\nRUN echo a \\\n  # inside\n\n   b \\\t\n  c\nENV X=1');
  assert.equal(n[1]!.args[0], 'echo a    b   c');
  assert.equal(n[1]!.startLine, 2);
  assert.equal(n[1]!.endLine, 6);
  assert.equal(n[2]!.startLine, 7);
});

test('a continuation at the end of the file ends the instruction', () => {
  assert.deepEqual(nodes('FROM a\nRUN echo \\').at(-1)!.args, ['echo']);
});

test('escape directive: backtick continues lines, backslash is plain', () => {
  const p = parseDockerfile('# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n');
  assert.equal(p.escape, '`');
  assert.equal(p.nodes[1]!.args[0], 'dir c:\\   /w');
});

test('directives: only at the top, syntax recorded, duplicates and bad escapes refused', () => {
  assert.equal(parseDockerfile('# syntax=docker/dockerfile:1\n# escape=\\\nFROM a').syntax, 'docker/dockerfile:1');
  assert.equal(parseDockerfile('FROM a\n# escape=`\nRUN x \\\n y').nodes[1]!.args[0], 'x  y', 'a directive after an instruction is a comment');
  assert.equal(parseDockerfile('# hello\n# escape=`\nFROM a\nRUN x \\\n y').escape, '\\', 'a comment ends the directives');
  assert.throws(() => parseDockerfile('# escape=x\nFROM a'), /invalid escape token 'x' does not match ` or \\/);
  assert.throws(() => parseDockerfile('# escape=`\n# escape=`\nFROM a'), /only one escape parser directive can be used/);
  assert.equal(parseDockerfile('# ESCAPE = `\nFROM a').escape, '`', 'keys are case-insensitive');
});

test('JSON vs shell form', () => {
  const [, a, b, c] = nodes('FROM x\nRUN ["a", "b"]\nRUN [not json]\nENTRYPOINT ["a", 1]');
  assert.deepEqual([a!.json, a!.args], [true, ['a', 'b']]);
  assert.deepEqual([b!.json, b!.args], [false, ['[not json]']]);
  assert.deepEqual([c!.json, c!.args], [false, ['["a", 1]']]);
  const [, cp] = nodes('FROM x\nCOPY ["a b", "/c d/"]');
  assert.deepEqual(cp!.args, ['a b', '/c d/']);
});

test('flags before the arguments', () => {
  assert.deepEqual(extractFlags('--from=build --chown="1:1" a b'), { flags: ['--from=build', '--chown=1:1'], rest: 'a b' });
  assert.deepEqual(extractFlags('-- a'), { flags: [], rest: ' a' });
  const [, c] = nodes('FROM x\nCOPY --from=0 --chmod=644 /a /b');
  assert.deepEqual([c!.flags, c!.args], [['--from=0', '--chmod=644'], ['/a', '/b']]);
});

test('ENV and LABEL: the old and the key=value forms', () => {
  const [, a, b, c] = nodes('FROM x\nENV A hello  world\nENV B=1 C="two words" D=a\\ b\nLABEL "x y"=z');
  assert.deepEqual(a!.pairs, [{ key: 'A', value: 'hello  world' }]);
  assert.deepEqual(b!.pairs, [{ key: 'B', value: '1' }, { key: 'C', value: '"two words"' }, { key: 'D', value: 'a\\ b' }]);
  assert.deepEqual(c!.pairs, [{ key: '"x y"', value: 'z' }]);
  parseErr('FROM x\nENV A', 'dockerfile parse error on line 2: ENV must have two arguments');
  parseErr('FROM x\nENV A=1 B', /line 2: Syntax error - can't find = in "B". Must be of the form: name=value/);
});

test('parseWords keeps quotes and escapes', () => {
  assert.deepEqual(parseWords(`a "b c" 'd e' f\\ g ""`, '\\'), ['a', '"b c"', "'d e'", 'f\\ g', '""']);
});

test('ARG names and defaults', () => {
  const [a] = nodes('ARG V=1 W\nFROM x');
  assert.deepEqual(a!.pairs, [{ key: 'V', value: '1' }, { key: 'W', value: undefined }]);
});

test('unknown instruction: Docker\'s message with the line', () => {
  parseErr('FROM x\n\nFOO bar', 'dockerfile parse error on line 3: unknown instruction: FOO');
  parseErr('FROM x\nfoo bar', 'dockerfile parse error on line 2: unknown instruction: FOO');
});

test('instruction checks with Docker\'s words', () => {
  parseErr('FROM a b', 'dockerfile parse error on line 1: FROM requires either one or three arguments');
  parseErr('FROM a AS 1x', /invalid name for build stage: "1x", name can't start with a number or contain symbols/);
  parseErr('FROM a\nCOPY x', 'dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined.');
  parseErr('FROM a\nWORKDIR', 'dockerfile parse error on line 2: WORKDIR requires exactly one argument');
  parseErr('FROM a\nSHELL sh -c', 'dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form');
  parseErr('FROM a\nRUN --mount=type=cache,target=/x true', /line 2: the --mount option requires BuildKit/);
  parseErr('FROM a\nCOPY --bogus=1 a b', 'dockerfile parse error on line 2: Unknown flag: bogus');
  parseErr('FROM a\nONBUILD ONBUILD RUN x', /Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed/);
  parseErr('FROM a\nONBUILD FROM b', /FROM isn't allowed as an ONBUILD trigger/);
  parseErr('RUN x', 'dockerfile parse error on line 1: no build stage in current context');
  parseErr('# only a comment\n', 'file with no instructions');
  parseErr('FROM a\nRUN <<EOF\necho\nEOF', /line 2: heredocs \(<<EOF\) need BuildKit/);
  parseErr('FROM a\nHEALTHCHECK CMD', /Missing command after HEALTHCHECK CMD/);
  parseErr('FROM a AS x\nFROM b AS X', /duplicate stage name "x"/);
});

test('a shell heredoc on one line is plain shell', () => {
  assert.equal(loadDockerfile("FROM a\nRUN cat <<EOF > f \\\n  hi EOF").stages[0]!.instructions[0]!.node.cmd, 'run');
});

test('stages, meta args, targets and the stages a target needs', () => {
  const df = loadDockerfile([
    'ARG BASE=busybox', 'FROM $BASE AS one', 'RUN a',
    'FROM busybox AS two', 'RUN b',
    'FROM one AS three', 'COPY --from=two /x /y', 'RUN c',
    'FROM busybox', 'COPY --from=0 /a /b',
  ].join('\n'));
  assert.equal(df.metaArgs.length, 1);
  assert.deepEqual(df.stages.map((s) => [s.name, s.base]), [['one', '$BASE'], ['two', 'busybox'], ['three', 'one'], [undefined, 'busybox']]);
  assert.deepEqual(neededStages(df, targetStage(df)).map((s) => s.index), [0, 3]);
  assert.deepEqual(neededStages(df, targetStage(df, 'THREE')).map((s) => s.index), [0, 1, 2]);
  assert.deepEqual(neededStages(df, targetStage(df, 'two')).map((s) => s.index), [1]);
  assert.throws(() => targetStage(df, 'nope'), /failed to reach build target nope in Dockerfile/);
});

test('ParseError carries the line', () => {
  try {
    loadDockerfile('FROM a\nBAD x');
  } catch (e) {
    assert.ok(e instanceof ParseError);
    assert.equal(e.line, 2);
  }
});

test('Go durations for HEALTHCHECK', () => {
  assert.equal(parseDuration('30s'), 30e9);
  assert.equal(parseDuration('1m30s'), 90e9);
  assert.equal(parseDuration('500ms'), 5e8);
  assert.throws(() => parseDuration('5x'), /invalid duration "5x"/);
});
