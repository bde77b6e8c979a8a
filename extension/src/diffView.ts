import { el, table } from './dom';
import { diffLineClass, IRunDiff } from './logic';

/**
 * Why two runs differ (`mlops runs diff`): the changed datasets with their rows and schema,
 * the differing rows most telling first, and the unified diff of their code from the
 * snapshots the runs stored. Every stored string goes in as text; colour comes from the
 * CSS class of each diff line.
 */
export function diffSection(diff: IRunDiff): HTMLElement {
  const a = diff.a.id;
  const b = diff.b.id;
  const parts: HTMLElement[] = [el('h3', { text: `Diff: run ${a} → run ${b}` })];
  if (!diff.data_changes.length && !diff.rows.length && !diff.code_diff.length) {
    parts.push(el('p', { text: `Runs ${a} and ${b} differ in nothing recorded.` }));
  }
  if (diff.data_changes.length) {
    parts.push(
      el('div', {
        cls: 'jp-mlops-table-wrap jp-mlops-diff-data',
        children: [
          table(
            ['data', '', 'what changed'],
            diff.data_changes.map(c => [c.role, c.source, c.summary])
          )
        ]
      })
    );
  }
  if (diff.rows.length) {
    parts.push(
      el('div', {
        cls: 'jp-mlops-table-wrap',
        children: [
          table(
            ['', '', `run ${a}`, `run ${b}`],
            diff.rows.map(r => [r.section, r.key, ...r.values.map(v => v ?? '–')])
          )
        ]
      })
    );
  }
  if (diff.code_diff.length) {
    parts.push(
      el('pre', {
        cls: 'jp-mlops-code-diff',
        children: diff.code_diff.map((line, i) =>
          el('div', { cls: diffLineClass(line, i), text: line })
        )
      })
    );
    if (diff.code_diff_omitted > 0) {
      parts.push(
        el('p', {
          text: `${diff.code_diff_omitted} more lines: \`mlops runs diff ${a} ${b}\` prints them all.`
        })
      );
    }
  } else if (diff.code_note) {
    parts.push(el('p', { text: `Code: ${diff.code_note}.` }));
  }
  return el('section', { cls: 'jp-mlops-diff', children: parts });
}
