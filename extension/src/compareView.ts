import { Widget } from '@lumino/widgets';

import { lineChart } from './charts';
import { diffSection } from './diffView';
import { el, table } from './dom';
import { IComparisonRow, IRunDiff, metricSeries, steppedKeys } from './logic';
import { requestAPI } from './request';
import { IRunDetail } from './runDetail';

interface IComparison {
  runs: { id: number; name: string | null }[];
  rows: IComparisonRow[];
  identical_packages: number;
}

/**
 * Runs side by side in a main-area tab: every stepped metric drawn as one chart with a
 * line per run (the question "which run learned better" answered at a glance), the
 * table of what differs, and the diff of the oldest and newest run (data, rows, code).
 */
export class CompareView extends Widget {
  constructor(readonly runIds: number[]) {
    super();
    this.addClass('jp-mlops-compare-view');
    this.title.label = `Compare ${runIds.join(', ')}`;
    this.title.closable = true;
    this.node.tabIndex = 0;
    this.node.appendChild(el('div', { text: 'Comparing…' }));
    void this.load();
  }

  async load(): Promise<void> {
    try {
      const [result, details] = await Promise.all([
        requestAPI<IComparison>(`compare?runs=${this.runIds.join(',')}`),
        Promise.all(this.runIds.map(id => requestAPI<IRunDetail>(`runs/${id}`)))
      ]);
      const header = ['', '', ...result.runs.map(r => `#${r.id} ${r.name ?? ''}`)];
      const rows = result.rows.map(r => [r.section, r.key, ...r.values.map(v => v ?? '–')]);
      this.node.replaceChildren(
        el('h3', { text: `Comparing ${result.runs.length} runs` }),
        this.charts(details),
        el('div', {
          cls: 'jp-mlops-table-wrap',
          children: [table(header, rows, result.rows.map(r => r.differs))]
        }),
        el('p', { text: `Highlighted rows differ; ${result.identical_packages} identical packages not shown.` })
      );
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
      return;
    }
    const sorted = [...this.runIds].sort((x, y) => x - y);
    await this.loadDiff(sorted[0], sorted[sorted.length - 1]);
  }

  /** One chart per metric stepped in any run, a line per run that logged it. */
  private charts(details: IRunDetail[]): HTMLElement {
    const perRun = details.map(d => metricSeries(d.metric_history));
    const keys = steppedKeys(perRun);
    if (!keys.length) {
      return el('p', { text: 'No metric was logged over steps: nothing to draw.' });
    }
    return el('div', {
      cls: 'jp-mlops-charts',
      children: keys.map(key =>
        lineChart(
          key,
          details.map((d, i) => ({
            label: `#${d.run.id} ${d.run.name ?? ''}`,
            points: perRun[i].get(key) ?? []
          }))
        )
      )
    });
  }

  /** The diff under the table; its failure leaves the side-by-side view in place. */
  private async loadDiff(a: number, b: number): Promise<void> {
    const placeholder = el('div', { text: 'Explaining the difference…' });
    this.node.appendChild(placeholder);
    try {
      const diff = await requestAPI<IRunDiff>(`runs/diff?a=${a}&b=${b}`);
      placeholder.replaceWith(diffSection(diff));
    } catch (error) {
      placeholder.replaceWith(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }
}
