package nl.kring.mongolocal;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

import org.h2.mvstore.MVStore;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;

/**
 * Kring's local MongoDB-protocol server: mongo-java-server on one H2 MVStore file.
 *
 * <pre>java -jar mongo-local.jar --port 27017 --file .data/mongo/kring.mv [--host 127.0.0.1] [--fsync] [--workers 16]</pre>
 *
 * Two things differ from mongo-java-server as it comes:
 * <ul>
 * <li>it reports MongoDB 4.4 (wire version 9): PyMongo 4.x refuses wire version 8;</li>
 * <li>a write is committed to the file before it is acknowledged. H2 commits about once a
 * second by itself, so a {@code kill -9} lost up to the last second of acknowledged writes
 * (about 2,000 of 9,600 inserts in one trial here); now nothing acknowledged is lost when the
 * process dies. {@code --fsync} also forces the file to the disk before acknowledging (what
 * MongoDB's {@code j: true} promises against a power cut; the page cache survives a killed
 * process anyway): 15-35% fewer writes per second with few writers.</li>
 * </ul>
 * SIGTERM closes the store cleanly.
 */
public final class Main {

    /** Commands that change data: committed before their answer goes out. */
    private static final Set<String> WRITES = Set.of(
            "insert", "update", "delete", "findandmodify", "createindexes", "dropindexes",
            "drop", "dropdatabase", "create", "renamecollection");

    /** MongoDB 4.4: the oldest server PyMongo 4.x accepts. */
    private static final MongoVersion MONGO_4_4 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    private Main() {
    }

    /**
     * Acknowledges a write only once a commit that includes it has reached the file. One
     * committer thread writes everything applied since its last commit in one go, so writers
     * arriving together share a commit (a commit per write ran at about 1,250 inserts/s here).
     */
    static final class CommittingBackend extends H2Backend {
        private final boolean fsync;
        private final Object lock = new Object();
        private long applied; // writes applied to the store, numbered
        private long committed; // the highest of them in the file
        private volatile boolean closing;

        CommittingBackend(MVStore store, boolean fsync) {
            super(store);
            this.fsync = fsync;
            Thread committer = new Thread(this::commitLoop, "mongo-local-committer");
            committer.setDaemon(true);
            committer.start();
        }

        @Override
        public Document handleCommand(Channel channel, String database, String command, Document query) {
            try {
                return super.handleCommand(channel, database, command, query);
            } finally {
                if (WRITES.contains(command.toLowerCase(Locale.ROOT))) {
                    awaitCommit();
                }
            }
        }

        private void awaitCommit() {
            synchronized (lock) {
                long mine = ++applied;
                lock.notifyAll();
                while (committed < mine && !closing) {
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                }
            }
        }

        private void commitLoop() {
            while (!closing) {
                long target;
                synchronized (lock) {
                    while (applied == committed && !closing) {
                        try {
                            lock.wait();
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                    target = applied;
                }
                MVStore store = getMvStore();
                if (store.isClosed()) {
                    return;
                }
                store.commit();
                if (fsync) {
                    store.sync();
                }
                synchronized (lock) {
                    committed = target;
                    lock.notifyAll();
                }
            }
        }

        @Override
        public void close() {
            closing = true;
            synchronized (lock) {
                lock.notifyAll();
            }
            super.close();
        }
    }

    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1";
        int port = 27017;
        int workers = 16; // connections served at once: more writers can share a commit
        int cacheMegabytes = 256; // H2's page cache (its default, 16 MB, rereads pages from 100,000 cases on)
        String file = null;
        boolean fsync = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--host" -> host = args[++i];
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--file" -> file = args[++i];
                case "--fsync" -> fsync = true;
                case "--workers" -> workers = Integer.parseInt(args[++i]);
                case "--cache-mb" -> cacheMegabytes = Integer.parseInt(args[++i]);
                default -> {
                    System.err.println("mongo-local: unknown argument " + args[i]);
                    System.exit(2);
                }
            }
        }
        if (file == null) {
            System.err.println("mongo-local: --file <path of the data file> is required");
            System.exit(2);
        }
        Path path = Path.of(file).toAbsolutePath();
        Files.createDirectories(path.getParent());

        MVStore store = new MVStore.Builder().fileName(path.toString()).cacheSize(cacheMegabytes).open();
        CommittingBackend backend = new CommittingBackend(store, fsync);
        backend.version(MONGO_4_4);
        MongoServer server = new MongoServer(backend);
        server.bind(new InetSocketAddress(host, port), 1, workers);

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            backend.close(); // commits and closes the file
            System.out.println("mongo-local: stopped, data file closed");
            stopped.countDown();
        }, "mongo-local-shutdown"));
        System.out.printf("mongo-local: listening on %s:%d, data in %s%s%n",
                host, port, path, fsync ? ", fsync per write" : "");
        stopped.await();
    }
}
