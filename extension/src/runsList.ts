import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';

import { el, textNode } from './dom';
import {
  Backoff,
  fingerprint,
  formatDuration,
  formatNumber,
  formatTime,
  IRunsPage,
  liveRunId,
  metricColumns,
  runsQuery,
  statusClass
} from './logic';
import { requestAPI } from './request';

const PAGE_SIZE = 50;

/**
 * The runs table: filter box, "this notebook only", paging, selection for
 * compare, live updates by polling with back-off while the panel is visible.
 */
export class RunsList extends Widget {
  constructor(
    private readonly onOpen: (runId: number) => void,
    private readonly onCompare: (runIds: number[]) => void
  ) {
    super();
    this.addClass('jp-mlops-runs');
    this.filterInput = el('input', {
      cls: 'jp-mlops-filter',
      attrs: {
        type: 'search',
        placeholder: "filter: metrics.acc > 0.9 and params.C = '0.5'",
        'aria-label': 'filter runs'
      }
    });
    this.filterInput.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.offset = 0;
        void this.refresh(true);
      }
    });
    this.notebookOnly = el('input', { attrs: { type: 'checkbox', 'aria-label': 'this notebook only' } });
    this.notebookOnly.addEventListener('change', () => {
      this.offset = 0;
      void this.refresh(true);
    });
    this.message = el('div', { cls: 'jp-mlops-message', attrs: { role: 'status' } });
    this.body = el('div', { cls: 'jp-mlops-table-wrap' });
    this.prev = el('button', { text: '‹ newer', attrs: { type: 'button' } });
    this.next = el('button', { text: 'older ›', attrs: { type: 'button' } });
    this.compareButton = el('button', {
      cls: 'jp-mlops-compare',
      text: 'Compare selected',
      attrs: { type: 'button' }
    });
    this.prev.addEventListener('click', () => {
      this.offset = Math.max(0, this.offset - PAGE_SIZE);
      void this.refresh(true);
    });
    this.next.addEventListener('click', () => {
      this.offset += PAGE_SIZE;
      void this.refresh(true);
    });
    this.compareButton.addEventListener('click', () => {
      this.onCompare([...this.selected]);
    });
    this.node.appendChild(
      el('div', {
        cls: 'jp-mlops-controls',
        children: [
          this.filterInput,
          el('label', {
            cls: 'jp-mlops-toggle',
            children: [this.notebookOnly, textNode(' this notebook only')]
          })
        ]
      })
    );
    this.node.appendChild(this.message);
    this.node.appendChild(this.body);
    this.node.appendChild(
      el('div', { cls: 'jp-mlops-pager', children: [this.prev, this.next, this.compareButton] })
    );
  }

  /** The active notebook's path (relative to the server root), or null. */
  setNotebook(path: string | null): void {
    if (path === this.notebook) {
      return;
    }
    this.notebook = path;
    if (this.notebookOnly.checked) {
      this.offset = 0;
    }
    void this.refresh(true);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.backoff.reset();
    void this.refresh(true);
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.visibilityListener = () => {
      if (!document.hidden && this.isVisible) {
        this.backoff.reset();
        void this.refresh(true);
      }
    };
    document.addEventListener('visibilitychange', this.visibilityListener);
  }

  protected onBeforeHide(msg: Message): void {
    this.stopPolling();
    super.onBeforeHide(msg);
  }

  protected onBeforeDetach(msg: Message): void {
    this.stopPolling();
    if (this.visibilityListener) {
      document.removeEventListener('visibilitychange', this.visibilityListener);
    }
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this.stopPolling();
    super.dispose();
  }

  private stopPolling(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Fetch the current page; `force` re-renders even if nothing changed. */
  async refresh(force = false): Promise<void> {
    this.stopPolling();
    if (this.isDisposed) {
      return;
    }
    let changed = false;
    let anyRunning = false;
    try {
      const page = await requestAPI<IRunsPage>(
        runsQuery({
          filter: this.filterInput.value,
          notebook: this.notebookOnly.checked ? this.notebook : null,
          limit: PAGE_SIZE,
          offset: this.offset
        })
      );
      const print = fingerprint(page);
      changed = print !== this.lastPrint;
      anyRunning = page.runs.some(r => r.status === 'running');
      if (changed || force) {
        this.lastPrint = print;
        this.render(page);
      }
      this.message.textContent = page.runs.length ? '' : 'No runs match.';
      this.message.classList.remove('jp-mlops-error');
    } catch (error) {
      this.message.textContent = (error as Error).message;
      this.message.classList.add('jp-mlops-error');
    }
    // Poll only while visible and the browser tab is showing.
    if (this.isVisible && !document.hidden && !this.isDisposed) {
      const delay = this.backoff.next(changed, anyRunning);
      this.timer = window.setTimeout(() => void this.refresh(), delay);
    }
  }

  private render(page: IRunsPage): void {
    const columns = metricColumns(page.runs);
    const live = liveRunId(page.runs, this.notebook);
    const header = ['', 'status', 'name', 'notebook', 'started', 'duration', ...columns];
    const rows = page.runs.map(run => {
      const box = el('input', {
        attrs: { type: 'checkbox', 'aria-label': `select run ${run.id}` }
      });
      box.checked = this.selected.has(run.id);
      box.addEventListener('click', event => event.stopPropagation());
      box.addEventListener('change', () => {
        if (box.checked) {
          this.selected.add(run.id);
        } else {
          this.selected.delete(run.id);
        }
        this.updateCompare();
      });
      const notebook = run.notebook ? run.notebook.split('/').pop() ?? '' : '';
      const row = el('tr', {
        cls: run.id === live ? 'jp-mlops-run jp-mlops-live' : 'jp-mlops-run',
        attrs: { tabindex: '0', 'data-run-id': String(run.id) },
        children: [
          el('td', { children: [box] }),
          el('td', {
            children: [el('span', { cls: `jp-mlops-badge ${statusClass(run.status)}`, text: run.status })]
          }),
          el('td', { text: run.name ?? `run ${run.id}` }),
          el('td', { text: notebook, attrs: { title: run.notebook ?? '' } }),
          el('td', { text: formatTime(run.started_at) }),
          el('td', { text: formatDuration(run.duration) }),
          ...columns.map(key => el('td', { text: formatNumber(run.metrics[key]) }))
        ]
      });
      row.addEventListener('click', () => this.onOpen(run.id));
      row.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          this.onOpen(run.id);
        }
      });
      return row;
    });
    const tableNode = el('table', {
      cls: 'jp-mlops-table',
      children: [
        el('thead', { children: [el('tr', { children: header.map(h => el('th', { text: h })) })] }),
        el('tbody', { children: rows })
      ]
    });
    this.body.replaceChildren(tableNode);
    this.prev.disabled = this.offset === 0;
    this.next.disabled = !page.has_more;
    this.updateCompare();
  }

  private updateCompare(): void {
    this.compareButton.disabled = this.selected.size < 2;
    this.compareButton.textContent = `Compare selected (${this.selected.size})`;
  }

  private readonly filterInput: HTMLInputElement;
  private readonly notebookOnly: HTMLInputElement;
  private readonly message: HTMLDivElement;
  private readonly body: HTMLDivElement;
  private readonly prev: HTMLButtonElement;
  private readonly next: HTMLButtonElement;
  private readonly compareButton: HTMLButtonElement;
  private readonly backoff = new Backoff();
  private readonly selected = new Set<number>();
  private notebook: string | null = null;
  private offset = 0;
  private lastPrint = '';
  private timer: number | null = null;
  private visibilityListener: (() => void) | null = null;
}
