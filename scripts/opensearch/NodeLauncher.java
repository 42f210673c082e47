import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * Starts one embedded OpenSearch node (with the k-NN plugin on the classpath) bound to
 * 127.0.0.1. Run in Java's single-file source mode by scripts/opensearch.py; it prints
 * "READY <port>" once the cluster is green and stays up until killed.
 * Args: basePath httpPort. path.repo is $OPENSEARCH_PATH_REPO, else basePath/../snapshots.
 */
public final class NodeLauncher {
  public static void main(String[] args) throws Exception {
    String basePath = args[0];
    int httpPort = Integer.parseInt(args[1]);
    // Filesystem snapshot repositories may live under here (imgsearch snapshot/restore).
    String pathRepo = System.getenv().getOrDefault("OPENSEARCH_PATH_REPO",
        new java.io.File(basePath).getAbsoluteFile().getParent() + "/snapshots");
    OpenSearchRunner runner = new OpenSearchRunner();
    runner.setMaxHttpPort(-1); // use exactly baseHttpPort + 1, no probing
    runner.onBuild((number, settings) -> {
      settings.put("network.host", "127.0.0.1");
      settings.put("http.port", String.valueOf(httpPort));
      settings.put("transport.port", "0");
      settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
      settings.put("action.auto_create_index", "false");
      settings.put("http.cors.enabled", "false");
      settings.put("path.repo", pathRepo);
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try { runner.close(); } catch (Exception e) { e.printStackTrace(); }
    }));
    try {
      runner.build(
          "-basePath", basePath,
          "-numOfNode", "1",
          "-baseHttpPort", String.valueOf(httpPort - 1),
          "-clusterName", "imgsearch-local",
          "-pluginTypes", "org.opensearch.knn.plugin.KNNPlugin",
          "-printOnFailure");
      runner.ensureYellow();
    } catch (Throwable t) {
      t.printStackTrace();
      System.exit(1);
    }
    System.out.println("READY " + httpPort);
    System.out.flush();
    Thread.currentThread().join();
  }
}
