// Variable substitution and .dockerignore rules as Docker applies them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processWord, processWords, envMap } from '../../src/images/build/shell.ts';
import { contextFilter, readDockerignore, contextFiles, applyDockerignore } from '../../src/images/build/dockerignore.ts';

const env = envMap(['X=ex', 'EMPTY=', 'SP=a b']);
const w = (s: string, esc = '\\') => processWord(s, env, esc);

test('plain and braced variables', () => {
  assert.equal(w('$X'), 'ex');
  assert.equal(w('${X}y'), 'exy');
  assert.equal(w('$Xy'), '', 'the name runs to the first non-name character');
  assert.equal(w('$UNSET-'), '-');
  assert.equal(w('a$'), 'a$');
  assert.equal(w('$ x'), '$ x');
  assert.equal(w('${SP}'), 'a b');
});

test('modifiers', () => {
  assert.equal(w('${UNSET:-d}'), 'd');
  assert.equal(w('${EMPTY:-d}'), 'd');
  assert.equal(w('${EMPTY-d}'), '');
  assert.equal(w('${UNSET-d}'), 'd');
  assert.equal(w('${X:-d}'), 'ex');
  assert.equal(w('${X:+y}'), 'y');
  assert.equal(w('${EMPTY:+y}'), '');
  assert.equal(w('${EMPTY+y}'), 'y');
  assert.equal(w('${UNSET+y}'), '');
  assert.equal(w('${UNSET:-$X/z}'), 'ex/z', 'the word is expanded');
  assert.equal(w('${UNSET:-a\\}b}'), 'a}b');
  assert.throws(() => w('${UNSET:?must be set}'), /UNSET: must be set/);
  assert.throws(() => w('${UNSET?}'), /UNSET: is not allowed to be unset/);
  assert.throws(() => w('${X'), /missing '}'/);
  assert.throws(() => w('${X#a}'), /unsupported modifier \(#\) in substitution/);
  assert.throws(() => w('${}'), /bad substitution/);
});

test('quotes and escapes', () => {
  assert.equal(w(`'$X'`), '$X');
  assert.equal(w(`"$X"`), 'ex');
  assert.equal(w(`"a\\"b\\$X\\\\c\\d"`), 'a"b$X\\c\\d');
  assert.equal(w('\\$X'), '$X');
  assert.equal(w('a\\ b'), 'a b');
  assert.equal(w('`$X', '`'), '$X');
  assert.equal(w('c:\\dir', '`'), 'c:\\dir');
  assert.throws(() => w(`'abc`), /matching single-quote/);
  assert.throws(() => w(`"abc`), /matching double-quote/);
});

test('words split on unquoted whitespace only', () => {
  assert.deepEqual(processWords('80 "8080/udp" ${SP}', env), ['80', '8080/udp', 'a b']);
  assert.deepEqual(processWords('  a\t b  ', env), ['a', 'b']);
});

test('.dockerignore patterns', () => {
  const pats = readDockerignore('# comment\n\n*.log\n!keep.log\n/tmp\n./build/**\nsecrets/\n**/*.bak\n');
  assert.deepEqual(pats, ['*.log', '!keep.log', '/tmp', './build/**', 'secrets/', '**/*.bak']);
  const f = contextFilter(pats);
  assert.equal(f.excluded('a.log'), true);
  assert.equal(f.excluded('keep.log'), false);
  assert.equal(f.excluded('sub/a.log'), false, '* does not cross directories');
  assert.equal(f.excluded('tmp'), true);
  assert.equal(f.excluded('tmp/x'), true, 'a directory takes its contents along');
  assert.equal(f.excluded('build/x/y'), true);
  assert.equal(f.excluded('secrets/k'), true);
  assert.equal(f.excluded('d/e/f.bak'), true);
  assert.equal(f.excluded('src/main.c'), false);
});

test('the last matching pattern wins; Dockerfile and .dockerignore are sent anyway', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loom-ign-'));
  try {
    for (const p of ['Dockerfile', '.dockerignore', 'a.txt', 'b.txt', 'd/c.txt', 'd/keep.txt', 'e/x']) {
      fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
      fs.writeFileSync(path.join(dir, p), p);
    }
    const pats = ['*', '!a.txt', '!d/keep.txt'];
    assert.deepEqual(contextFiles(dir, pats, 'Dockerfile'), ['.dockerignore', 'Dockerfile', 'a.txt', 'd/keep.txt']);
    assert.deepEqual(contextFiles(dir, ['e', 'd/*.txt', '!d/c.txt'], 'Dockerfile'), ['.dockerignore', 'Dockerfile', 'a.txt', 'b.txt', 'd', 'd/c.txt']);
    applyDockerignore(dir, ['e', '*.txt', 'Dockerfile']);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['.dockerignore', 'd']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
