/* rvs_* : real symbols for DPDK's static-inline fast-path functions. */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H
#include <stdint.h>
#include <stddef.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
void rvs_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void *rvs_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t rvs_pktmbuf_headroom(const struct rte_mbuf *m);
uint32_t rvs_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rvs_pktmbuf_data_len(const struct rte_mbuf *m);
uint16_t rvs_mbuf_refcnt_read(const struct rte_mbuf *m);
void rvs_mbuf_refcnt_set(struct rte_mbuf *m, uint16_t v);
uint16_t rvs_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v);
uint16_t rvs_mbuf_port(const struct rte_mbuf *m);
unsigned int rvs_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n);
unsigned int rvs_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n);
unsigned int rvs_ring_count(const struct rte_ring *r);
unsigned int rvs_mempool_in_use_count(const struct rte_mempool *mp);
unsigned int rvs_lcore_id(void);
uint64_t rvs_rdtsc(void);
uint64_t rvs_get_tsc_hz(void);
int rvs_errno(void);
uint32_t rvs_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);
uint32_t rvs_softrss_be(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);
void rvs_convert_rss_key(const uint32_t *orig, uint32_t *targ, int len);
/* DPDK log capture: EAL and drivers report the reason of a failure in their log, not in
 * rte_errno. rvs captures the log around fallible set-up calls to put it in the error. */
int rvs_log_capture_begin(void);
size_t rvs_log_capture_end(char *out, size_t cap);
#endif
