// The resizer component on a second runtime: transpiled by jco and run on Node's V8 with
// preview2-shim, granted nothing (no preopens, no environment, no network).
//
//   node scripts/jco/thumbs.mjs RESIZER.wasm LIST.tsv OUTDIR
//
// LIST.tsv has one call a line, no header:
//   input_path <TAB> width <TAB> height <TAB> fit <TAB> format <TAB> quality <TAB> gravity
//   <TAB> animated <TAB> out_name
// (fit: contain|cover|fill, format: png|jpeg|webp|avif|gif, gravity: center, a compass point
// such as north-east, smart, or focus:x,y; animated: true|false; input paths relative to the
// working directory). Each call goes through `thumbnails.make` (WIT 1.1), as the host's do.
// Each call writes OUTDIR/out_name (the thumbnail's bytes) or OUTDIR/out_name.err:
// the error variant's tag on the first line (`malformed-image`, `unsupported-format`,
// `too-large`, `invalid-options`, `internal`, or `trap` when the guest crashed) and its payload
// on the second. Every call gets a fresh instance, as in the host's sandbox; the core modules
// are compiled once. Prints one summary line; exits non-zero only when the run itself fails
// (bad arguments, transpiling, instantiating), never for an image's error.
//
// Install once with `npm ci --prefix scripts/jco`; host/tests/jco.rs runs this and compares the
// outputs with the host's.

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

import { transpile } from "@bytecodealliance/jco";
import { WASIShim } from "@bytecodealliance/preview2-shim/instantiation";

// The host's default pixel limit (resizer_core::DEFAULT_MAX_PIXELS); a u64, so a bigint.
const MAX_PIXELS = 52_000_000n;
const FITS = new Set(["contain", "cover", "fill"]);
const FORMATS = new Set(["png", "jpeg", "webp", "avif", "gif"]);

/** The WIT `gravity` variant for its text form (`focus:x,y` carries a point). */
function gravity(text) {
    if (text.startsWith("focus:")) {
        const [x, y] = text.slice(6).split(",").map(Number);
        return { tag: "focus", val: { x, y } };
    }
    return { tag: text };
}

function fail(msg) {
    console.error(`thumbs.mjs: ${msg}`);
    process.exit(2);
}

function parseList(text) {
    const calls = [];
    text.split("\n").forEach((line, i) => {
        if (line.trim() === "" || line.startsWith("#")) return;
        const f = line.split("\t");
        if (f.length !== 9) fail(`LIST line ${i + 1}: expected 9 tab-separated fields, got ${f.length}`);
        const [input, width, height, fit, format, quality, grav, animated, out] = f;
        if (!FITS.has(fit)) fail(`LIST line ${i + 1}: fit ${JSON.stringify(fit)}`);
        if (!FORMATS.has(format)) fail(`LIST line ${i + 1}: format ${JSON.stringify(format)}`);
        if (out === "" || out.includes("..")) fail(`LIST line ${i + 1}: out_name ${JSON.stringify(out)}`);
        calls.push({
            input,
            out,
            options: {
                width: Number.parseInt(width, 10),
                height: Number.parseInt(height, 10),
                fit,
                format,
                quality: Number.parseInt(quality, 10),
                maxPixels: MAX_PIXELS,
                gravity: gravity(grav),
                animated: animated === "true",
            },
        });
    });
    return calls;
}

/** The error variant's tag and payload, or `trap` for anything that is not a typed error. */
function errorOf(e) {
    const payload = e !== null && typeof e === "object" && "payload" in e ? e.payload : undefined;
    if (payload && typeof payload.tag === "string") {
        const val = JSON.stringify(payload.val, (_, v) => (typeof v === "bigint" ? v.toString() : v));
        return `${payload.tag}\n${val}\n`;
    }
    // A WebAssembly.RuntimeError (unreachable, out of bounds, out of memory) or a bindings bug.
    return `trap\n${e?.name ?? "Error"}: ${e?.message ?? String(e)}\n`;
}

const median = (xs) => {
    if (xs.length === 0) return NaN;
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
    const [wasmPath, listPath, outDir] = process.argv.slice(2);
    if (!wasmPath || !listPath || !outDir || process.argv.length !== 5) {
        fail("usage: node scripts/jco/thumbs.mjs RESIZER.wasm LIST.tsv OUTDIR");
    }
    const calls = parseList(await readFile(listPath, "utf8"));
    await mkdir(outDir, { recursive: true });

    // Transpile into a temporary ES module folder. 'async' instantiation: the module imports
    // nothing itself, and we pass every WASI import explicitly.
    let t = performance.now();
    const { files } = await transpile(await readFile(wasmPath), {
        name: "resizer",
        instantiation: "async",
        quiet: true,
    });
    const transpileMs = performance.now() - t;
    const dir = await mkdtemp(join(tmpdir(), "edgethumb-jco-"));
    try {
        await writeFile(join(dir, "package.json"), JSON.stringify({ type: "module" }));
        for (const [name, bytes] of Object.entries(files)) {
            await mkdir(dirname(join(dir, name)), { recursive: true });
            await writeFile(join(dir, name), bytes);
        }
        const { instantiate } = await import(pathToFileURL(join(dir, "resizer.js")).href);

        // Core modules compiled once, instantiated per call.
        t = performance.now();
        const modules = new Map();
        for (const name of Object.keys(files).filter((n) => n.endsWith(".wasm"))) {
            modules.set(name, await WebAssembly.compile(files[name]));
        }
        const compileMs = performance.now() - t;
        const getCoreModule = (name) => {
            const m = modules.get(name);
            if (!m) throw new Error(`no core module ${name} in the transpiled output`);
            return m;
        };
        // The host's policy: the guest gets no files, no environment, no arguments and no
        // network. (stdout and stderr stay the process's; the resizer writes to neither.)
        const shim = new WASIShim({
            sandbox: { preopens: {}, env: {}, args: [], enableNetwork: false },
        });
        const imports = shim.getImportObject();

        let ok = 0;
        const errors = new Map();
        const instantiateMs = [];
        const callMs = [];
        let slowest = { ms: -1, input: "" };
        for (const call of calls) {
            const image = await readFile(call.input);
            t = performance.now();
            const root = await instantiate(getCoreModule, imports);
            const thumbnails = root[Object.keys(root).find((k) => k.startsWith("edgethumb:resizer/thumbnails@"))];
            instantiateMs.push(performance.now() - t);
            t = performance.now();
            let result;
            let error;
            try {
                result = thumbnails.make(image, call.options);
            } catch (e) {
                error = errorOf(e);
            }
            const ms = performance.now() - t;
            callMs.push(ms);
            if (ms > slowest.ms) slowest = { ms, input: call.input };
            const target = join(outDir, call.out);
            await mkdir(dirname(target), { recursive: true });
            if (error === undefined) {
                ok += 1;
                await writeFile(target, result.data);
            } else {
                const tag = error.split("\n", 1)[0];
                errors.set(tag, (errors.get(tag) ?? 0) + 1);
                await writeFile(`${target}.err`, error);
            }
        }

        const sum = (xs) => xs.reduce((a, b) => a + b, 0);
        const byTag = [...errors].map(([k, v]) => `${k} ${v}`).join(", ");
        const nErrors = sum([...errors.values()]);
        const f = (x) => x.toFixed(1);
        console.log(
            `jco on node ${process.version}: ${calls.length} calls, ` +
                `${ok} ok, ${nErrors} errors${byTag ? ` (${byTag})` : ""}; ` +
                `transpile ${f(transpileMs)} ms, compile ${f(compileMs)} ms; per image: ` +
                `thumbnail mean ${f(sum(callMs) / Math.max(1, calls.length))} ms, ` +
                `median ${f(median(callMs))} ms, slowest ${f(slowest.ms)} ms (${slowest.input}); ` +
                `instantiate mean ${f(sum(instantiateMs) / Math.max(1, calls.length))} ms`,
        );
    } finally {
        if (!process.env.EDGETHUMB_JCO_KEEP) await rm(dir, { recursive: true, force: true });
    }
}

main().then(
    // preview2-shim's I/O worker would keep the process alive.
    () => process.exit(0),
    (e) => {
        console.error(e);
        process.exit(1);
    },
);
