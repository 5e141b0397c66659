// Validate Grafana dashboard JSON files against @grafana/schema's own TypeScript types.
//
//   node tests/js/validate-dashboards.mjs grafana/dashboards/*.json
//
// @grafana/schema ships types only (no JSON schema), so each dashboard is written into a TypeScript
// module, in memory, as object literals checked with `satisfies` by the TypeScript compiler:
// - the whole dashboard as the package's `Dashboard` (excess properties are violations too), and
//   again each panel as a `Panel` or `RowPanel` and each variable as a `VariableModel` (a union such
//   as `Panel | RowPanel` lets excess properties through);
// - each stat panel's options as the stat plugin's `Options`, each time series panel's options and
//   fieldConfig.defaults.custom as the timeseries plugin's `Options` and `FieldConfig`;
// - each query as the package's `DataQuery` (the package has no Prometheus query type, so the
//   Prometheus fields themselves, expr and legendFormat, are not checked here);
// and the dashboard's schemaVersion must be the one the package's `defaultDashboard` declares.
//
// JSON holds a string enum's value ("absolute"), which TypeScript would not take for the enum member
// (ThresholdsMode.Absolute): the types are read through `JSONOf`, which turns every string enum into
// the union of its values and leaves everything else as declared.
//
// Prints each violation and one line per file, `<file>: <n> violations`; exits 1 if any was found.
// A count is a lower bound: TypeScript reports one excess property per object literal, and none in
// an object with another error, so fixing one violation can reveal the next. Zero is zero.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';
import { defaultDashboard } from '@grafana/schema';

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const SCHEMA_VERSION = defaultDashboard.schemaVersion;
const SCHEMA_PACKAGE = require('@grafana/schema/package.json');
const PANEL_TYPES = join(HERE, 'node_modules/@grafana/schema/dist/types/raw/composable');

const PRELUDE = `
import type { Dashboard, DataQuery, Panel, RowPanel, VariableModel } from '@grafana/schema';
import type * as stat from '${PANEL_TYPES}/stat/panelcfg/x/types.gen';
import type * as timeseries from '${PANEL_TYPES}/timeseries/panelcfg/x/types.gen';

type JSONOf<T> = T extends string
  ? \`\${T}\`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<JSONOf<U>>
      : T extends object
        ? { [K in keyof T]: JSONOf<T[K]> }
        : T;
`;

const OPTIONS = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  skipLibCheck: true,
  types: [],
};

/** value as a TypeScript literal (JSON, indented), and the JSON path of each of its lines. */
function literal(value) {
  const lines = [];
  const paths = [];
  const emit = (text, path) => {
    lines.push(text);
    paths.push(path);
  };
  const walk = (v, path, indent, prefix, suffix) => {
    const pad = '  '.repeat(indent);
    const open = (bracket) => emit(`${pad}${prefix}${bracket}`, path);
    if (Array.isArray(v) && v.length > 0) {
      open('[');
      v.forEach((item, i) => walk(item, `${path}[${i}]`, indent + 1, '', i < v.length - 1 ? ',' : ''));
      emit(`${pad}]${suffix}`, path);
    } else if (v !== null && typeof v === 'object' && Object.keys(v).length > 0) {
      open('{');
      const keys = Object.keys(v);
      keys.forEach((k, i) =>
        walk(v[k], `${path}.${k}`, indent + 1, `${JSON.stringify(k)}: `, i < keys.length - 1 ? ',' : ''),
      );
      emit(`${pad}}${suffix}`, path);
    } else {
      emit(`${pad}${prefix}${JSON.stringify(v)}${suffix}`, path);
    }
  };
  walk(value, '', 0, '', '');
  return { text: lines.join('\n'), paths };
}

/** The TypeScript module for one dashboard, and what each of its lines checks. */
function moduleFor(name, dashboard) {
  const lines = PRELUDE.split('\n');
  // What each line of the module checks: the fragment's label and the JSON path within it.
  const where = lines.map(() => 'the prelude');
  let count = 0;
  const check = (label, value, type) => {
    const { text, paths } = literal(value ?? null);
    const body = `export const check${count++} = ${text} satisfies ${type};`.split('\n');
    lines.push(...body);
    where.push(...paths.map((path) => `${label}${path ? ' ' + path.replace(/^\./, '') : ''}`));
  };
  check(`${name}: the dashboard`, dashboard, 'JSONOf<Dashboard>');
  const panels = (dashboard.panels ?? []).flatMap((p) => [p, ...(Array.isArray(p?.panels) ? p.panels : [])]);
  for (const variable of dashboard.templating?.list ?? []) {
    check(`${name}: variable ${variable?.name}`, variable, 'JSONOf<VariableModel>');
  }
  for (const panel of panels) {
    const at = `${name}: panel ${panel?.id} ${JSON.stringify(panel?.title ?? '')} (${panel?.type})`;
    check(at, panel, panel?.type === 'row' ? 'JSONOf<RowPanel>' : 'JSONOf<Panel>');
    if (panel?.type === 'stat') {
      check(`${at} options`, panel.options, 'JSONOf<stat.Options>');
    } else if (panel?.type === 'timeseries') {
      check(`${at} options`, panel.options, 'JSONOf<timeseries.Options>');
      check(`${at} fieldConfig.defaults.custom`, panel.fieldConfig?.defaults?.custom,
        'JSONOf<timeseries.FieldConfig>');
    }
    for (const target of Array.isArray(panel?.targets) ? panel.targets : []) {
      check(`${at} query ${target?.refId}`, target, 'JSONOf<DataQuery> & Record<string, unknown>');
    }
  }
  return { text: lines.join('\n') + '\n', where };
}

function compile(files) {
  const host = ts.createCompilerHost(OPTIONS);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.fileExists = (f) => files.has(f) || ts.sys.fileExists(f);
  host.readFile = (f) => (files.has(f) ? files.get(f).text : readFile(f));
  host.getSourceFile = (f, version, onError, create) =>
    files.has(f) ? ts.createSourceFile(f, files.get(f).text, version, true) : getSourceFile(f, version, onError, create);
  const program = ts.createProgram([...files.keys()], OPTIONS, host);
  return ts.getPreEmitDiagnostics(program);
}

function main(paths) {
  if (paths.length === 0) {
    console.error('usage: node validate-dashboards.mjs DASHBOARD.json...');
    return 2;
  }
  const files = new Map();
  const extra = new Map();
  for (const path of paths) {
    const name = basename(path);
    const dashboard = JSON.parse(readFileSync(path, 'utf-8'));
    // A virtual module next to node_modules, so that '@grafana/schema' resolves as it does here.
    const virtual = join(HERE, `__dashboards__/${name}.ts`);
    files.set(virtual, { path, ...moduleFor(name, dashboard) });
    extra.set(path, dashboard.schemaVersion === SCHEMA_VERSION ? [] : [
      `${name}: schemaVersion is ${JSON.stringify(dashboard.schemaVersion)}; @grafana/schema ` +
        `${SCHEMA_PACKAGE.version} declares ${SCHEMA_VERSION}`,
    ]);
  }
  const found = new Map(paths.map((p) => [p, [...extra.get(p)]]));
  for (const diagnostic of compile(files)) {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n  ');
    const file = diagnostic.file && files.get(diagnostic.file.fileName);
    if (!file) {
      // A problem outside the dashboards (the package's types, the prelude): every file fails.
      for (const list of found.values()) list.push(`TypeScript: ${text}`);
      continue;
    }
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
    found.get(file.path).push(`${file.where[line] ?? basename(file.path)}\n  ${text}`);
  }
  let total = 0;
  for (const [path, problems] of found) {
    for (const problem of problems) console.log(problem);
    console.log(`${basename(path)}: ${problems.length} violations`);
    total += problems.length;
  }
  console.log(`@grafana/schema ${SCHEMA_PACKAGE.version}, typescript ${ts.version}, schemaVersion ${SCHEMA_VERSION}`);
  return total === 0 ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2).map((p) => resolve(p)));
