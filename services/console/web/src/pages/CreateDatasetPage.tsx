// Placeholder: replaced by the page's implementation.
export function CreateDatasetPage() {
  return <section className="panel">CreateDatasetPage</section>;
}
