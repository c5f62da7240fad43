// The console's entry point: reads the session, then routes to the pages.

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { Navigate, RouterProvider, createBrowserRouter } from "react-router";
import { ApiError, loadSession } from "./api";
import { Shell } from "./layout";
import { CreateDatasetPage } from "./pages/CreateDatasetPage";
import { DatasetPage } from "./pages/DatasetPage";
import { ModelPage } from "./pages/ModelPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { ProjectPage } from "./pages/ProjectPage";
import { ProjectsPage } from "./pages/ProjectsPage";
import { TrainPage } from "./pages/TrainPage";
import { FlashProvider } from "./ui/components";
import "./styles.css";

const queries = new QueryClient({
  defaultOptions: {
    queries: {
      retry: (count, error) => count < 2 && !(error instanceof ApiError && error.status >= 400 && error.status < 500),
      refetchOnWindowFocus: false,
      staleTime: 1000,
    },
  },
});

async function start() {
  const root = createRoot(document.getElementById("root")!);
  let session;
  try {
    session = await loadSession();
  } catch {
    window.location.assign(`/signin?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
    return;
  }
  const router = createBrowserRouter([
    {
      path: "/",
      element: <Shell session={session} />,
      children: [
        { index: true, element: <Navigate to="/projects" replace /> },
        { path: "projects", element: <ProjectsPage /> },
        { path: "projects/:project", element: <ProjectPage /> },
        { path: "projects/:project/datasets/new", element: <CreateDatasetPage /> },
        { path: "projects/:project/datasets/:type", element: <DatasetPage /> },
        { path: "projects/:project/train", element: <TrainPage /> },
        { path: "projects/:project/models/:version", element: <ModelPage /> },
        { path: "*", element: <NotFoundPage /> },
      ],
    },
  ]);
  root.render(
    <StrictMode>
      <QueryClientProvider client={queries}>
        <FlashProvider>
          <RouterProvider router={router} />
        </FlashProvider>
      </QueryClientProvider>
    </StrictMode>,
  );
}

void start();
