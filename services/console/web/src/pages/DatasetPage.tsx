// Placeholder: replaced by the page's implementation.
export function DatasetPage() {
  return <section className="panel">DatasetPage</section>;
}
