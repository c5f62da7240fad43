// One colour per label, stable while the label list stays the same (box outlines, tags, swatches).

type Hex = `#${string}`;

const PALETTE: Hex[] = [
  "#0972d3",
  "#d91515",
  "#037f0c",
  "#8d6605",
  "#7d2105",
  "#6b40c4",
  "#00828c",
  "#c33d69",
  "#4a5c00",
  "#ec7211",
  "#1d8102",
  "#5f6b7a",
];

/** The colour of `label`: by its place in `labels`, or from its name when it is not listed. */
export function labelColor(label: string, labels: string[]): Hex {
  let index = labels.indexOf(label);
  if (index < 0) {
    index = 0;
    for (const char of label) index = (index * 31 + char.charCodeAt(0)) >>> 0;
  }
  return PALETTE[index % PALETTE.length];
}
