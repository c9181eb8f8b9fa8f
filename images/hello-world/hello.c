/*
 * The hello-world image's only program: print a greeting and what Dockyard did to show it.
 *
 * Built with `gcc -static` so the image needs nothing else (it is FROM scratch), and it writes with
 * one write(2) so the message arrives whole even through a pipe.
 */
#include <string.h>
#include <unistd.h>

static const char message[] =
    "\n"
    "Hello from Dockyard!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "\n"
    "To generate this message, Dockyard took the following steps:\n"
    " 1. The dockyard command looked for the \"hello-world\" image in its local store\n"
    "    (pulling it from a registry first if it was missing).\n"
    " 2. The storage driver mounted a root filesystem for a new container from the\n"
    "    image's layers, and the network driver gave it its network.\n"
    " 3. The isolation driver started the executable that produces the output you\n"
    "    are reading inside fresh namespaces, under a small monitor process.\n"
    " 4. The monitor streamed that output to the dockyard command, which wrote it to\n"
    "    your terminal (and kept it in the container's log).\n"
    "\n"
    "No daemon was involved: when the program exited, the container stopped.\n"
    "\n"
    "To try something more ambitious, run a Debian container with:\n"
    " $ dockyard run -it debian bash\n"
    "\n"
    "See the container that just ran with:\n"
    " $ dockyard ps -a\n"
    "\n";

int main(void)
{
    size_t left = sizeof(message) - 1;
    const char *next = message;

    while (left > 0) {
        ssize_t written = write(STDOUT_FILENO, next, left);
        if (written < 0)
            return 1;
        next += written;
        left -= (size_t)written;
    }
    return 0;
}
