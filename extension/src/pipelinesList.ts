import { Widget } from '@lumino/widgets';

import { el, textNode } from './dom';
import { formatDuration, formatTime, statusClass } from './logic';
import { requestAPI } from './request';

interface IPipelines {
  pipelines: {
    id: number;
    name: string;
    status: string;
    trigger: string;
    started_at: number;
    error: string | null;
    steps: {
      step: string;
      status: string;
      run_id: number | null;
      cached_from: number | null;
      error: string | null;
      duration: number | null;
      notebook: string | null;
      report: string | null;
    }[];
  }[];
}

/** What a pipeline step can open: its run, its executed notebook, its HTML report. */
export interface IPipelineOpeners {
  openRun: (runId: number) => void;
  openNotebook: (path: string) => void;
  openArtifact: (runId: number, name: string) => void;
}

/**
 * Recent pipeline runs, newest first, each step on one compact line: a status badge
 * (cached, finished = executed, failed ...), its duration, and buttons that open the
 * step's run, the executed notebook (in JupyterLab) and the HTML report (in a tab).
 */
export class PipelinesList extends Widget {
  constructor(private readonly openers: IPipelineOpeners) {
    super();
    this.addClass('jp-mlops-pipelines');
  }

  async refresh(): Promise<void> {
    try {
      const data = await requestAPI<IPipelines>('pipelines?limit=20');
      if (!data.pipelines.length) {
        this.node.replaceChildren(el('p', { text: 'No pipeline runs yet: `mlops pipeline run SPEC`.' }));
        return;
      }
      this.node.replaceChildren(
        ...data.pipelines.map(p =>
          el('section', {
            cls: 'jp-mlops-pipeline',
            attrs: { 'data-pipeline-id': String(p.id) },
            children: [
              el('div', {
                cls: 'jp-mlops-pipeline-head',
                children: [
                  el('span', { cls: `jp-mlops-badge ${statusClass(p.status)}`, text: p.status }),
                  textNode(` ${p.name} #${p.id} · ${formatTime(p.started_at)} · ${p.trigger}`)
                ]
              }),
              p.error ? el('div', { cls: 'jp-mlops-error', text: p.error }) : null,
              el('ul', { cls: 'jp-mlops-steps', children: p.steps.map(s => this.step(s)) })
            ]
          })
        )
      );
    } catch (error) {
      this.node.replaceChildren(el('div', { cls: 'jp-mlops-error', text: (error as Error).message }));
    }
  }

  private step(s: IPipelines['pipelines'][number]['steps'][number]): HTMLElement {
    const label = s.status === 'finished' ? 'executed' : s.status;
    const buttons: HTMLElement[] = [];
    const button = (text: string, title: string, onClick: () => void) => {
      const b = el('button', { cls: 'jp-mlops-link', text, attrs: { type: 'button', title } });
      b.addEventListener('click', onClick);
      buttons.push(b);
    };
    if (s.run_id !== null) {
      const runId = s.run_id;
      button(`run ${runId}`, `Open run ${runId}`, () => this.openers.openRun(runId));
      if (s.report) {
        const report = s.report;
        button('report', `Open ${report}`, () => this.openers.openArtifact(runId, report));
      }
    }
    if (s.notebook) {
      const notebook = s.notebook;
      button('notebook', `Open ${notebook}`, () => this.openers.openNotebook(notebook));
    }
    return el('li', {
      attrs: { 'data-step': s.step },
      children: [
        el('div', {
          children: [
            el('span', { cls: `jp-mlops-badge ${s.status === 'cached' ? 'jp-mlops-status-cached' : statusClass(s.status)}`, text: label }),
            textNode(` ${s.step} ${formatDuration(s.duration)}`)
          ]
        }),
        el('div', { cls: 'jp-mlops-step-links', children: buttons }),
        s.error ? el('div', { cls: 'jp-mlops-error', text: s.error }) : null
      ]
    });
  }
}
