import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * Starts one embedded OpenSearch node (with the k-NN plugin on the classpath) bound to
 * 127.0.0.1. Run in Java's single-file source mode by scripts/opensearch.py; it prints
 * "READY <port>" once the cluster is green and stays up until killed.
 * Args: basePath httpPort. path.repo is $OPENSEARCH_PATH_REPO, else basePath/../snapshots.
 * A member of a multi-node cluster adds: transportPort nodeName seedHosts initialManagers
 * (seed transport addresses and the cluster-manager-eligible node names, comma-separated);
 * its cluster is named imgsearch-cluster, so it never meets the single imgsearch-local node.
 */
public final class NodeLauncher {
  public static void main(String[] args) throws Exception {
    String basePath = args[0];
    int httpPort = Integer.parseInt(args[1]);
    // Filesystem snapshot repositories may live under here (imgsearch snapshot/restore).
    String pathRepo = System.getenv().getOrDefault("OPENSEARCH_PATH_REPO",
        new java.io.File(basePath).getAbsoluteFile().getParent() + "/snapshots");
    boolean member = args.length >= 6;
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
      if (member) {
        settings.put("transport.port", args[2]);
        settings.put("node.name", args[3]);
        settings.putList("discovery.seed_hosts", args[4].split(","));
        settings.putList("cluster.initial_cluster_manager_nodes", args[5].split(","));
      }
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try { runner.close(); } catch (Exception e) { e.printStackTrace(); }
    }));
    try {
      runner.build(
          "-basePath", basePath,
          "-numOfNode", "1",
          "-baseHttpPort", String.valueOf(httpPort - 1),
          "-clusterName", member ? "imgsearch-cluster" : "imgsearch-local",
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
