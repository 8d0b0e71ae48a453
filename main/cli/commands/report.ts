import { stat } from 'node:fs/promises';
import type { Command } from '../command.js';
import { strOpt } from '../command.js';
import { SliceformError } from '../../common/errors.js';
import { mergeReports, readReport, reportFilesIn, writeReport } from '../../batch/report.js';

const usage = `Usage: sliceform report --merge DIR_OR_REPORT [DIR_OR_REPORT ...] --out DIR

Merges batch reports (report.json and the per-shard report.shard-I-of-N.json of 'segment --shard') into one
DIR/report.json + DIR/report.csv. Each argument is an output folder (all its reports are read) or a report
JSON file. A file reported by several shards keeps its successful row (the latest one); reports made with
different models are refused. Prints the merged summary as JSON.

Options:
  --merge        merge the given reports (the only mode)
  --out DIR      where the merged report.json / report.csv go (created if needed)
  -h, --help     show this help

Exit codes: 0 merged and every file ok, 3 merged but some files failed, 2 bad input (no reports, other models).`;

const report: Command = {
  name: 'report',
  summary: 'merge batch segmentation reports of several shards into one report.json/csv',
  usage,
  options: {
    merge: { type: 'boolean' },
    out: { type: 'string' },
  },
  allowPositionals: true,
  async run(args, io) {
    if (!args.values.merge) throw new SliceformError('bad-input', `report needs --merge\n\n${usage}`);
    const out = strOpt(args.values, 'out', true);
    if (args.positionals.length === 0) throw new SliceformError('bad-input', `report --merge needs folders or report files\n\n${usage}`);
    const files: string[] = [];
    for (const p of args.positionals) {
      let st;
      try {
        st = await stat(p);
      } catch {
        throw new SliceformError('bad-input', 'not found', { file: p });
      }
      if (st.isDirectory()) {
        const found = await reportFilesIn(p);
        if (found.length === 0) throw new SliceformError('bad-input', 'no report.json or report.shard-*.json in this folder', { file: p });
        files.push(...found);
      } else files.push(p);
    }
    const unique = [...new Set(files)];
    const reports = [];
    for (const f of unique) reports.push({ file: f, report: await readReport(f) });
    const merged = mergeReports(reports);
    const written = await writeReport(out, merged, 'report');
    io.out(JSON.stringify({ report: written.json, csv: written.csv, merged: unique, summary: merged.summary }));
    return merged.summary.failed > 0 ? 3 : 0;
  },
};

export default report;
