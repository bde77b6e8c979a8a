import { formatNumber, niceTicks, visibleText } from './logic';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 480;
const HEIGHT = 220;
const MARGIN = { left: 56, right: 12, top: 10, bottom: 34 };

export interface ISeries {
  label: string;
  points: { step: number; value: number }[];
}

function svgNode<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>,
  text?: string
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    node.setAttribute(name, String(value));
  }
  if (text !== undefined) {
    node.textContent = visibleText(text); // labels are user strings: text, never markup
  }
  return node;
}

/**
 * One metric over steps, one line per series, with labelled axes and a legend. Drawn
 * by hand in SVG: a few lines and ticks do not earn a chart library. Colours come from
 * CSS classes (theme variables), so light and dark themes both read.
 */
export function lineChart(title: string, series: ISeries[]): HTMLElement {
  const drawn = series.filter(s => s.points.length > 0);
  const all = ([] as { step: number; value: number }[]).concat(...drawn.map(s => s.points));
  const steps = all.map(p => p.step);
  const values = all.map(p => p.value);
  const [minX, maxX] = [Math.min(...steps), Math.max(...steps)];
  const [minY, maxY] = [Math.min(...values), Math.max(...values)];
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) => MARGIN.left + (maxX === minX ? plotW / 2 : ((x - minX) / (maxX - minX)) * plotW);
  const sy = (y: number) => MARGIN.top + (maxY === minY ? plotH / 2 : plotH - ((y - minY) / (maxY - minY)) * plotH);

  const svg = svgNode('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'jp-mlops-linechart', role: 'img' });
  svg.appendChild(svgNode('title', {}, `${title} by step`));
  const axes = svgNode('g', { class: 'jp-mlops-axis' });
  axes.appendChild(svgNode('line', { x1: MARGIN.left, y1: MARGIN.top + plotH, x2: MARGIN.left + plotW, y2: MARGIN.top + plotH }));
  axes.appendChild(svgNode('line', { x1: MARGIN.left, y1: MARGIN.top, x2: MARGIN.left, y2: MARGIN.top + plotH }));
  for (const tick of niceTicks(minY, maxY)) {
    const y = sy(tick);
    axes.appendChild(svgNode('line', { class: 'jp-mlops-grid', x1: MARGIN.left, y1: y, x2: MARGIN.left + plotW, y2: y }));
    axes.appendChild(svgNode('text', { x: MARGIN.left - 4, y: y + 3, 'text-anchor': 'end' }, String(tick)));
  }
  for (const tick of niceTicks(minX, maxX).filter(Number.isInteger)) {
    const x = sx(tick);
    axes.appendChild(svgNode('line', { x1: x, y1: MARGIN.top + plotH, x2: x, y2: MARGIN.top + plotH + 4 }));
    axes.appendChild(svgNode('text', { x, y: MARGIN.top + plotH + 15, 'text-anchor': 'middle' }, String(tick)));
  }
  axes.appendChild(svgNode('text', { x: MARGIN.left + plotW / 2, y: HEIGHT - 3, 'text-anchor': 'middle' }, 'step'));
  svg.appendChild(axes);
  drawn.forEach((s, i) => {
    const cls = `jp-mlops-line jp-mlops-line-${i % 6}`;
    const points = s.points.map(p => `${sx(p.step).toFixed(1)},${sy(p.value).toFixed(1)}`).join(' ');
    const line = svgNode('polyline', { class: cls, points });
    line.appendChild(svgNode('title', {}, s.label));
    svg.appendChild(line);
    for (const p of s.points.length <= 60 ? s.points : []) {
      const dot = svgNode('circle', { class: cls, cx: sx(p.step).toFixed(1), cy: sy(p.value).toFixed(1), r: 2.5 });
      dot.appendChild(svgNode('title', {}, `${s.label}: step ${p.step}, ${formatNumber(p.value)}`));
      svg.appendChild(dot);
    }
  });

  const figure = document.createElement('figure');
  figure.className = 'jp-mlops-figure';
  const caption = document.createElement('figcaption');
  caption.textContent = visibleText(title);
  figure.append(caption, svg);
  if (drawn.length > 1) {
    const legend = document.createElement('ul');
    legend.className = 'jp-mlops-legend';
    drawn.forEach((s, i) => {
      const item = document.createElement('li');
      const swatch = document.createElement('span');
      swatch.className = `jp-mlops-swatch jp-mlops-line-${i % 6}`;
      item.append(swatch, document.createTextNode(visibleText(s.label)));
      legend.appendChild(item);
    });
    figure.appendChild(legend);
  }
  return figure;
}
